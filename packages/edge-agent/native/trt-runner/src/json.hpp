// A small strict JSON reader and string quoting for the runner's protocol headers (kd-edge's own code).
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace kd {
namespace json {

/** One JSON value. Objects keep their members in order; duplicate keys are refused by the parser. */
struct Value {
  enum class Type { Null, Bool, Number, String, Array, Object };
  Type type = Type::Null;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Value> array;
  std::vector<std::pair<std::string, Value>> object;

  /** The member `key` of an object, or nullptr (also for a non-object). */
  const Value* get(const char* key) const;
};

/**
 * Parses exactly one JSON value filling all of `data` (whitespace around it allowed). Nesting deeper than
 * `maxDepth` is refused. On failure returns false and says why in `error`.
 */
bool parse(const char* data, std::size_t size, Value& out, std::string& error, int maxDepth = 16);

/** `s` as a JSON string literal, quotes included; control characters escaped. */
std::string quote(const std::string& s);

}  // namespace json
}  // namespace kd
