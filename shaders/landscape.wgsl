// Loss-landscape heatmap with contour lines (crates/prefscope-web: landscape panel).
//
// One full-screen triangle; the fragment shader samples the n × n grid of losses bilinearly,
// maps it to [0, 1] (linearly or logarithmically between lo and hi), colours it with viridis and
// lightens pixels near each of `contours` evenly spaced levels. The canvas fallback
// (crates/prefscope-web/src/landscape.rs: `rasterise`) implements the same rule on the CPU.

struct Params {
    n: u32,
    log_scale: u32,
    lo: f32,
    hi: f32,
    contours: f32,
    _pad0: f32,
    _pad1: f32,
    _pad2: f32,
};

@group(0) @binding(0) var<uniform> params: Params;
// Row-major, bottom row first.
@group(0) @binding(1) var<storage, read> values: array<f32>;

struct VsOut {
    @builtin(position) position: vec4<f32>,
    // (0, 0) bottom left, (1, 1) top right.
    @location(0) uv: vec2<f32>,
};

@vertex
fn vs(@builtin(vertex_index) i: u32) -> VsOut {
    // A triangle covering the viewport: (0,0), (2,0), (0,2) in uv.
    let xy = vec2<f32>(f32((i << 1u) & 2u), f32(i & 2u));
    var out: VsOut;
    out.position = vec4<f32>(xy * 2.0 - 1.0, 0.0, 1.0);
    out.uv = xy;
    return out;
}

fn at(i: u32, j: u32) -> f32 {
    return values[j * params.n + i];
}

fn sample_grid(uv: vec2<f32>) -> f32 {
    let last = f32(params.n - 1u);
    let p = clamp(uv, vec2<f32>(0.0), vec2<f32>(1.0)) * last;
    let i = min(u32(floor(p.x)), params.n - 2u);
    let j = min(u32(floor(p.y)), params.n - 2u);
    let f = p - vec2<f32>(f32(i), f32(j));
    let bottom = mix(at(i, j), at(i + 1u, j), f.x);
    let top = mix(at(i, j + 1u), at(i + 1u, j + 1u), f.x);
    return mix(bottom, top, f.y);
}

fn normalised(v: f32) -> f32 {
    var t: f32;
    if (params.log_scale == 1u) {
        let lo = max(params.lo, 1e-6);
        t = (log(max(v, lo)) - log(lo)) / (log(params.hi) - log(lo));
    } else {
        t = (v - params.lo) / (params.hi - params.lo);
    }
    return clamp(t, 0.0, 1.0);
}

// Polynomial fit of matplotlib's viridis (Matt Zucker, CC0).
fn viridis(t: f32) -> vec3<f32> {
    let c0 = vec3<f32>(0.2777273272234177, 0.005407344544966578, 0.3340998053353061);
    let c1 = vec3<f32>(0.1050930431085774, 1.404613529898575, 1.384590162594685);
    let c2 = vec3<f32>(-0.3308618287255563, 0.214847559468213, 0.09509516302823659);
    let c3 = vec3<f32>(-4.634230498983486, -5.799100973351585, -19.33244095627987);
    let c4 = vec3<f32>(6.228269936347081, 14.17993336680509, 56.69055260068105);
    let c5 = vec3<f32>(4.776384997670288, -13.74514537774601, -65.35303263337234);
    let c6 = vec3<f32>(-5.435455855934631, 4.645852612178535, 26.3124352495832);
    return clamp(c0 + t * (c1 + t * (c2 + t * (c3 + t * (c4 + t * (c5 + t * c6))))), vec3<f32>(0.0), vec3<f32>(1.0));
}

@fragment
fn fs(in: VsOut) -> @location(0) vec4<f32> {
    let t = normalised(sample_grid(in.uv));
    let f = t * params.contours;
    // Distance to the nearest level in units of the level's screen-space rate of change.
    let width = max(fwidth(f), 1e-6);
    let distance = abs(fract(f + 0.5) - 0.5);
    let line = 1.0 - smoothstep(0.0, 1.5 * width, distance);
    let colour = mix(viridis(t), vec3<f32>(1.0), 0.55 * line);
    return vec4<f32>(colour, 1.0);
}
