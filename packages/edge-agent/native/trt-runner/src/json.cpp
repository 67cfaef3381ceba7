// A small strict JSON reader (RFC 8259 grammar) for frames of at most 64 KiB: recursive descent with a depth limit,
// every read bounds-checked against the end of the buffer.
#include "json.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>

namespace kd {
namespace json {

const Value* Value::get(const char* key) const {
  if (type != Type::Object) return nullptr;
  for (const auto& m : object) {
    if (m.first == key) return &m.second;
  }
  return nullptr;
}

namespace {

class Parser {
 public:
  Parser(const char* data, std::size_t size, int maxDepth) : p_(data), end_(data + size), maxDepth_(maxDepth) {}

  bool document(Value& out, std::string& error) {
    skipSpace();
    if (!value(out, 0)) {
      error = error_;
      return false;
    }
    skipSpace();
    if (p_ != end_) {
      error = "unexpected data after the JSON value";
      return false;
    }
    return true;
  }

 private:
  const char* p_;
  const char* end_;
  int maxDepth_;
  std::string error_;

  bool fail(const char* what) {
    if (error_.empty()) error_ = what;
    return false;
  }

  void skipSpace() {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }

  bool literal(const char* word) {
    std::size_t n = std::strlen(word);
    if (static_cast<std::size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0) return fail("invalid literal");
    p_ += n;
    return true;
  }

  bool value(Value& out, int depth) {
    if (depth > maxDepth_) return fail("JSON nested too deeply");
    if (p_ == end_) return fail("unexpected end of JSON");
    switch (*p_) {
      case '{': return objectValue(out, depth);
      case '[': return arrayValue(out, depth);
      case '"':
        out.type = Value::Type::String;
        return stringValue(out.string);
      case 't':
        out.type = Value::Type::Bool;
        out.boolean = true;
        return literal("true");
      case 'f':
        out.type = Value::Type::Bool;
        out.boolean = false;
        return literal("false");
      case 'n':
        out.type = Value::Type::Null;
        return literal("null");
      default:
        out.type = Value::Type::Number;
        return numberValue(out.number);
    }
  }

  bool objectValue(Value& out, int depth) {
    out.type = Value::Type::Object;
    ++p_;
    skipSpace();
    if (p_ != end_ && *p_ == '}') {
      ++p_;
      return true;
    }
    for (;;) {
      skipSpace();
      if (p_ == end_ || *p_ != '"') return fail("expected a member name");
      std::string key;
      if (!stringValue(key)) return false;
      if (out.get(key.c_str()) != nullptr || key.find('\0') != std::string::npos) return fail("duplicate or invalid member name");
      skipSpace();
      if (p_ == end_ || *p_ != ':') return fail("expected ':'");
      ++p_;
      skipSpace();
      Value v;
      if (!value(v, depth + 1)) return false;
      out.object.emplace_back(std::move(key), std::move(v));
      skipSpace();
      if (p_ == end_) return fail("unexpected end of object");
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ == '}') {
        ++p_;
        return true;
      }
      return fail("expected ',' or '}'");
    }
  }

  bool arrayValue(Value& out, int depth) {
    out.type = Value::Type::Array;
    ++p_;
    skipSpace();
    if (p_ != end_ && *p_ == ']') {
      ++p_;
      return true;
    }
    for (;;) {
      skipSpace();
      Value v;
      if (!value(v, depth + 1)) return false;
      out.array.push_back(std::move(v));
      skipSpace();
      if (p_ == end_) return fail("unexpected end of array");
      if (*p_ == ',') {
        ++p_;
        continue;
      }
      if (*p_ == ']') {
        ++p_;
        return true;
      }
      return fail("expected ',' or ']'");
    }
  }

  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  bool hex4(unsigned& out) {
    if (end_ - p_ < 4) return fail("short \\u escape");
    out = 0;
    for (int i = 0; i < 4; ++i) {
      int h = hex(p_[i]);
      if (h < 0) return fail("bad \\u escape");
      out = out * 16 + static_cast<unsigned>(h);
    }
    p_ += 4;
    return true;
  }

  static void utf8(std::string& s, unsigned cp) {
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  bool stringValue(std::string& out) {
    ++p_;  // opening quote
    for (;;) {
      if (p_ == end_) return fail("unterminated string");
      unsigned char c = static_cast<unsigned char>(*p_++);
      if (c == '"') return true;
      if (c < 0x20) return fail("control character in string");
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (p_ == end_) return fail("unterminated escape");
      char e = *p_++;
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo = 0;
            if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return fail("lone surrogate");
            p_ += 2;
            if (!hex4(lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return fail("lone surrogate");
          }
          utf8(out, cp);
          break;
        }
        default:
          return fail("bad escape");
      }
    }
  }

  bool numberValue(double& out) {
    const char* start = p_;
    if (p_ != end_ && *p_ == '-') ++p_;
    if (p_ == end_) return fail("bad number");
    if (*p_ == '0') {
      ++p_;
    } else if (*p_ >= '1' && *p_ <= '9') {
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    } else {
      return fail("unexpected character");
    }
    if (p_ != end_ && *p_ == '.') {
      ++p_;
      if (p_ == end_ || *p_ < '0' || *p_ > '9') return fail("bad number");
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (p_ != end_ && (*p_ == 'e' || *p_ == 'E')) {
      ++p_;
      if (p_ != end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ == end_ || *p_ < '0' || *p_ > '9') return fail("bad number");
      while (p_ != end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    // The grammar was checked above; strtod reads a bounded, NUL-terminated copy (the buffer itself is not terminated).
    std::string token(start, p_);
    if (token.size() > 64) return fail("number too long");
    out = std::strtod(token.c_str(), nullptr);
    if (!std::isfinite(out)) return fail("number out of range");
    return true;
  }
};

}  // namespace

bool parse(const char* data, std::size_t size, Value& out, std::string& error, int maxDepth) {
  Parser parser(data, size, maxDepth);
  out = Value();
  return parser.document(out, error);
}

std::string quote(const std::string& s) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    if (c == '"') {
      out += "\\\"";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7F) {
      out += "\\u00";
      out += digits[c >> 4];
      out += digits[c & 0xF];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  return out;
}

}  // namespace json
}  // namespace kd
