/**
 * The shape kinds of the synthetic dataset: each has an SVG element for rendering and an exact
 * inside test for computing which pixels it covers (labels are boxes of the visible pixels).
 */

/** Names of the shape kinds, in class-id order. */
export const SHAPE_KINDS = [
  'circle', 'square', 'triangle', 'star', 'cross', 'ring',
  'ellipse', 'hexagon', 'diamond', 'pentagon', 'semicircle', 'arrow',
] as const;

/** One of {@link SHAPE_KINDS}. */
export type ShapeKind = (typeof SHAPE_KINDS)[number];

/** A placed shape: centre, radius (half its extent), rotation in radians, fill colour. */
export interface Shape {
  kind: ShapeKind;
  cx: number;
  cy: number;
  r: number;
  angle: number;
  color: [number, number, number];
}

type Pt = [number, number];

/** Vertices of a polygonal kind in the shape's own frame (unit radius, unrotated), or null. */
function unitPolygon(kind: ShapeKind): Pt[] | null {
  const regular = (n: number, phase = -Math.PI / 2): Pt[] =>
    Array.from({ length: n }, (_, i) => [Math.cos(phase + (2 * Math.PI * i) / n), Math.sin(phase + (2 * Math.PI * i) / n)]);
  switch (kind) {
    case 'square': return [[-0.8, -0.8], [0.8, -0.8], [0.8, 0.8], [-0.8, 0.8]];
    case 'triangle': return regular(3);
    case 'hexagon': return regular(6, 0);
    case 'pentagon': return regular(5);
    case 'diamond': return [[0, -1], [0.55, 0], [0, 1], [-0.55, 0]];
    case 'star': return Array.from({ length: 10 }, (_, i) => {
      const a = -Math.PI / 2 + (Math.PI * i) / 5, rr = i % 2 === 0 ? 1 : 0.42;
      return [rr * Math.cos(a), rr * Math.sin(a)] as Pt;
    });
    case 'cross': {
      const w = 0.33;
      return [[-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1], [-w, 1], [-w, w], [-1, w], [-1, -w], [-w, -w]];
    }
    case 'semicircle': return [
      ...Array.from({ length: 17 }, (_, i) => [Math.cos(Math.PI * i / 16), 0.5 - Math.sin(Math.PI * i / 16)] as Pt),
    ];
    case 'arrow': return [[-1, -0.25], [0.2, -0.25], [0.2, -0.7], [1, 0], [0.2, 0.7], [0.2, 0.25], [-1, 0.25]];
    default: return null;
  }
}

function toWorld(s: Shape, p: Pt): Pt {
  const c = Math.cos(s.angle), sn = Math.sin(s.angle);
  return [s.cx + s.r * (c * p[0] - sn * p[1]), s.cy + s.r * (sn * p[0] + c * p[1])];
}

/** A function telling whether a point (pixel centre) lies inside the shape. */
export function insideTest(s: Shape): (x: number, y: number) => boolean {
  const c = Math.cos(s.angle), sn = Math.sin(s.angle);
  // Into the shape's own frame, in units of r.
  const local = (x: number, y: number): Pt => {
    const dx = (x - s.cx) / s.r, dy = (y - s.cy) / s.r;
    return [c * dx + sn * dy, -sn * dx + c * dy];
  };
  const poly = unitPolygon(s.kind);
  if (poly) {
    return (x, y) => {
      const [px, py] = local(x, y);
      let inside = false;
      for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
        const [xi, yi] = poly[i]!, [xj, yj] = poly[j]!;
        if ((yi > py) !== (yj > py) && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) inside = !inside;
      }
      return inside;
    };
  }
  switch (s.kind) {
    case 'circle': return (x, y) => { const [px, py] = local(x, y); return px * px + py * py <= 1; };
    case 'ring': return (x, y) => { const [px, py] = local(x, y); const d = px * px + py * py; return d <= 1 && d >= 0.55 * 0.55; };
    case 'ellipse': return (x, y) => { const [px, py] = local(x, y); return px * px + (py / 0.55) ** 2 <= 1; };
    default: throw new RangeError(`unknown shape kind ${s.kind}`);
  }
}

/** The SVG element drawing the shape. */
export function shapeSvg(s: Shape): string {
  const fill = `rgb(${s.color.join(',')})`;
  const f = (v: number) => v.toFixed(2);
  const poly = unitPolygon(s.kind);
  if (poly) return `<polygon points="${poly.map((p) => toWorld(s, p).map(f).join(',')).join(' ')}" fill="${fill}"/>`;
  const deg = (s.angle * 180) / Math.PI;
  switch (s.kind) {
    case 'circle': return `<circle cx="${f(s.cx)}" cy="${f(s.cy)}" r="${f(s.r)}" fill="${fill}"/>`;
    case 'ring': return `<circle cx="${f(s.cx)}" cy="${f(s.cy)}" r="${f(s.r * 0.775)}" fill="none" stroke="${fill}" stroke-width="${f(s.r * 0.45)}"/>`;
    case 'ellipse': return `<ellipse cx="${f(s.cx)}" cy="${f(s.cy)}" rx="${f(s.r)}" ry="${f(s.r * 0.55)}" transform="rotate(${f(deg)} ${f(s.cx)} ${f(s.cy)})" fill="${fill}"/>`;
    default: throw new RangeError(`unknown shape kind ${s.kind}`);
  }
}
