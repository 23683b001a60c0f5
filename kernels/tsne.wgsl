// t-SNE with the exact gradient (van der Maaten & Hinton 2008, as scikit-learn's TSNE):
// input affinities from each point's k nearest neighbours, then gradient descent on the 2-D
// positions y. Three entry points:
//
// affinities: one invocation per AFFINITY_ROWS points i (two groups of 4). For each i:
//   1. its k nearest neighbours j != i by squared distance d_ij = |x_i - x_j|^2, kept in a
//      max-heap over row i of `neighbours` and `row` (the root holds the farthest one kept);
//   2. the precision beta_i by bisection, as scikit-learn's _binary_search_perplexity: start
//      at 1, double (halve) until bracketed, then bisect; stop when
//      |H - log(perplexity)| <= 1e-5 or after 100 evaluations, H the row's entropy in nats;
//   3. row i := p_{j|i} = e_j / sum_j e_j, e_j = exp(-(d_ij - d_min) * beta_i).
//   Shifting by the row's smallest distance d_min leaves p and H unchanged, and keeps
//   sum_j e_j >= 1 in f32, where exp(-d * beta) alone underflows for wide data.
//   H = log(sum_j e_j) + beta * sum_j (d_ij - d_min) p_{j|i}.
//
// gradient: one invocation per GRADIENT_ROWS points i (GROUPS groups of 4), with the
//   symmetric P of the kept pairs in CSR form:
//   w_ij = 1 / (1 + |y_i - y_j|^2), Z = sum_{i != j} w_ij, q_ij = w_ij / Z,
//   dC/dy_i = 4 sum_j (a * p_ij - q_ij) w_ij (y_i - y_j)     (a: early exaggeration)
//           = 4 (attract_i - repulse_i / Z),
//   attract_i = a * sum_{j in row i} p_ij w_ij (y_i - y_j)    (the kept pairs only),
//   repulse_i = sum_{j != i} w_ij^2 (y_i - y_j)               (all pairs: O(N) per point).
//   Z needs every point, so this pass writes each point's share z_i = sum_{j != i} w_ij and
//   the update pass adds them up. With params.with_kl, also kl_i = sum_j p_ij log(w_ij), for
//   KL(P||Q) = sum p log p - sum_i kl_i + (sum p) log Z (the host adds the first term).
//
// update: ONE workgroup for all points (the work is O(N), and one workgroup can sum Z).
//   Z = sum_i z_i, then scikit-learn's _gradient_descent for each coordinate:
//   g = 4 (attract - repulse / Z); gain += 0.2 where the last step and g differ in sign,
//   else gain *= 0.8, at least 0.01; step = momentum * step - learning_rate * gain * g;
//   y += step. With params.reset, step starts at 0 and gain at 1 (a new phase). With
//   params.apply = 0 it only sums Z and the KL shares (the final evaluation).
//
// Why blocks of rows: on llvmpipe a load costs far more than the arithmetic of one pair, and
// an invocation that keeps many points' sums in registers pays one load of y_j (x_j) for
// all of them (the gradient: 32 rows run ~6x faster than 1). Rows past N are clamped to the
// last point and not written.
//
// Index legend: i a point an invocation owns, j another point, r = 0..ROWS-1 its rows, a a
// group of 4 rows, m the row within a group (a vec4 holds one value of each of the 4 rows),
// s a slot 0..k-1 of a neighbour row, e an entry of the CSR arrays, q a group of 4 input
// dimensions, t invocation in the update's workgroup. Flat invocation index
// gid.x + gid.y * num_workgroups.x * WORKGROUP (a 2-D grid).
//
// affinities bindings: 0 data [N,Q*4] (each point's D values, zero-padded to Q*4),
//   1 neighbours [N,k] u32 (written), 2 row [N,k] f32 (written: distances while searching,
//   then p_{j|i}), 3 params.
// gradient bindings: 0 positions [ceil(N/2)*2, 2] (padded to whole vec4s), 1 row_start
//   [N+1] u32 (multiples of 4), 2 columns [nnz] u32, 3 values [nnz] f32 (p_ij, summing to 1;
//   each row padded with p = 0 to a multiple of 4 entries), 4 forces [N,4] (written:
//   attract, repulse), 5 shares [N,2] (written: z_i, kl_i), 6 params, 7 points: positions
//   again, as [ceil(N/2)*2] vec2s.
// update bindings: 0 positions [N,2] (read-write), 1 forces [N,4], 2 shares [N,2],
//   3 state [N,4] (read-write: step, gain), 4 stats [2] (written: Z, sum_i kl_i), 5 params.

override WORKGROUP: u32 = 8;
// The update's single workgroup; a power of two (its sums are a tree).
override UPDATE_WORKGROUP: u32 = 256;

// Rows per invocation: affinities 2 groups of 4, gradient GROUPS groups of 4.
const AFFINITY_ROWS = 8u;
const GROUPS = 8u;
const GRADIENT_ROWS = 32u;
// Inputs of up to 4 * MAX_QUADS dimensions (the logits: 10) keep the rows' own coordinates
// in registers; wider ones read them from memory for every pair (correct, ~3x slower). A
// larger cache costs compile time on llvmpipe: 64 dimensions took 7 s to compile, 16 take 1.
const MAX_QUADS = 4u;
const STEPS = 100u;
const TOLERANCE = 1e-5;
const FLOAT_MAX = 0x1.fffffep+127f;
const MIN_GAIN = 0.01;

struct AffinityParams {
  n: u32,
  // Q: vec4s per point.
  quads: u32,
  k: u32,
  // log(perplexity): the entropy each row must have.
  log_perplexity: f32,
}

struct GradientParams {
  n: u32,
  exaggeration: f32,
  // 1 to compute the KL shares kl_i as well.
  with_kl: u32,
}

struct UpdateParams {
  n: u32,
  momentum: f32,
  learning_rate: f32,
  // 1 on the first iteration of a phase: step 0, gain 1.
  reset: u32,
  // 0 to sum Z and the KL shares without moving the points.
  apply: u32,
}

// affinities
@group(0) @binding(0) var<storage, read> data: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> neighbours: array<u32>;
@group(0) @binding(2) var<storage, read_write> row: array<f32>;
@group(0) @binding(3) var<uniform> affinity_params: AffinityParams;

// gradient
@group(0) @binding(0) var<storage, read> positions: array<vec4f>;
@group(0) @binding(1) var<storage, read> row_start: array<u32>;
@group(0) @binding(2) var<storage, read> columns: array<vec4u>;
@group(0) @binding(3) var<storage, read> values: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> forces: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> shares: array<vec2f>;
@group(0) @binding(6) var<uniform> gradient_params: GradientParams;
// The same buffer as `positions`, one point at a time (a vec4 gather costs twice a vec2's).
@group(0) @binding(7) var<storage, read> points: array<vec2f>;

// update
@group(0) @binding(0) var<storage, read_write> moving: array<vec2f>;
@group(0) @binding(1) var<storage, read> update_forces: array<vec4f>;
@group(0) @binding(2) var<storage, read> update_shares: array<vec2f>;
@group(0) @binding(3) var<storage, read_write> state: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> stats: array<vec2f>;
@group(0) @binding(5) var<uniform> update_params: UpdateParams;

var<workgroup> partial: array<vec2f, UPDATE_WORKGROUP>;

// The 4 consecutive points from `first`, clamped to the last point.
fn four(first: u32, n: u32) -> vec4u {
  return min(vec4u(first) + vec4u(0u, 1u, 2u, 3u), vec4u(n - 1u));
}

// Dimensions 4q..4q+3 of 4 points, transposed: column m holds dimension 4q+m of each point.
fn quad_of(points: vec4u, q: u32) -> mat4x4f {
  let quads = affinity_params.quads;
  return transpose(mat4x4f(
    data[points.x * quads + q],
    data[points.y * quads + q],
    data[points.z * quads + q],
    data[points.w * quads + q],
  ));
}

// Row `base` of the heap: puts (d, j) in place of the root and sinks it into place.
fn replace_farthest(base: u32, k: u32, d: f32, j: u32) {
  var at = 0u;
  loop {
    var child = 2u * at + 1u;
    if (child >= k) {
      break;
    }
    if (child + 1u < k && row[base + child + 1u] > row[base + child]) {
      child += 1u;
    }
    if (row[base + child] <= d) {
      break;
    }
    row[base + at] = row[base + child];
    neighbours[base + at] = neighbours[base + child];
    at = child;
  }
  row[base + at] = d;
  neighbours[base + at] = j;
}

// Row `base` of k distances -> p_{j|i} at the precision that matches the perplexity.
fn calibrate(base: u32, k: u32) {
  var nearest = FLOAT_MAX;
  for (var s = 0u; s < k; s++) {
    nearest = min(nearest, row[base + s]);
  }
  var beta = 1.0;
  var beta_min = 0.0;
  var beta_max = 0.0;
  var has_min = false;
  var has_max = false;
  var sum = 1.0;
  for (var step = 0u; step < STEPS; step++) {
    sum = 0.0;
    var weighted = 0.0;
    for (var s = 0u; s < k; s++) {
      let d = row[base + s] - nearest;
      let e = exp(-d * beta);
      sum += e;
      weighted += d * e;
    }
    let entropy = log(sum) + beta * weighted / sum;
    let excess = entropy - affinity_params.log_perplexity;
    if (abs(excess) <= TOLERANCE || step + 1u == STEPS) {
      break;
    }
    // Too flat (entropy too high): a larger precision sharpens the row.
    if (excess > 0.0) {
      beta_min = beta;
      has_min = true;
      beta = select(beta * 2.0, (beta + beta_max) * 0.5, has_max);
    } else {
      beta_max = beta;
      has_max = true;
      beta = select(beta * 0.5, (beta + beta_min) * 0.5, has_min);
    }
  }
  // The probabilities of the last precision evaluated, as scikit-learn keeps them.
  for (var s = 0u; s < k; s++) {
    row[base + s] = exp(-(row[base + s] - nearest) * beta) / sum;
  }
}

@compute @workgroup_size(WORKGROUP)
fn affinities(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let first = (gid.x + gid.y * groups.x * WORKGROUP) * AFFINITY_ROWS;
  let n = affinity_params.n;
  let quads = affinity_params.quads;
  let k = affinity_params.k;
  if (first >= n) {
    return;
  }
  let rows0 = four(first, n);
  let rows1 = four(first + 4u, n);
  for (var i = first; i < min(first + AFFINITY_ROWS, n); i++) {
    for (var s = 0u; s < k; s++) {
      row[i * k + s] = FLOAT_MAX;
      neighbours[i * k + s] = i;
    }
  }
  let cached = quads <= MAX_QUADS;
  var own: array<mat4x4f, 2 * MAX_QUADS>;
  if (cached) {
    for (var q = 0u; q < quads; q++) {
      own[2u * q] = quad_of(rows0, q);
      own[2u * q + 1u] = quad_of(rows1, q);
    }
  }

  // 1. The k nearest: a candidate closer than a row's root replaces it and sinks into place.
  // far0, far1: each row's root; -1 for rows past N, so that nothing ever enters them.
  let ids = vec4u(0u, 1u, 2u, 3u);
  var far0 = select(vec4f(FLOAT_MAX), vec4f(-1.0), vec4u(first) + ids >= vec4u(n));
  var far1 = select(vec4f(FLOAT_MAX), vec4f(-1.0), vec4u(first + 4u) + ids >= vec4u(n));
  for (var j = 0u; j < n; j++) {
    var d0 = vec4f(0.0);
    var d1 = vec4f(0.0);
    for (var q = 0u; q < quads; q++) {
      let v = data[j * quads + q];
      let xj = mat4x4f(vec4f(v.x), vec4f(v.y), vec4f(v.z), vec4f(v.w));
      var a0: mat4x4f;
      var a1: mat4x4f;
      if (cached) {
        a0 = own[2u * q];
        a1 = own[2u * q + 1u];
      } else {
        a0 = quad_of(rows0, q);
        a1 = quad_of(rows1, q);
      }
      let e0 = a0 - xj;
      let e1 = a1 - xj;
      d0 += e0[0] * e0[0] + e0[1] * e0[1] + e0[2] * e0[2] + e0[3] * e0[3];
      d1 += e1[0] * e1[0] + e1[1] * e1[1] + e1[2] * e1[2] + e1[3] * e1[3];
    }
    // A point is not its own neighbour.
    d0 = select(d0, vec4f(FLOAT_MAX), vec4u(first) + ids == vec4u(j));
    d1 = select(d1, vec4f(FLOAT_MAX), vec4u(first + 4u) + ids == vec4u(j));
    let closer0 = d0 < far0;
    let closer1 = d1 < far1;
    // Rare once the heaps are full: most candidates are farther than every root.
    if (any(closer0) || any(closer1)) {
      for (var r = 0u; r < AFFINITY_ROWS; r++) {
        let m = r & 3u;
        let d = select(d1[m], d0[m], r < 4u);
        if (select(closer1[m], closer0[m], r < 4u)) {
          let base = (first + r) * k;
          replace_farthest(base, k, d, j);
          if (r < 4u) {
            far0[m] = row[base];
          } else {
            far1[m] = row[base];
          }
        }
      }
    }
  }

  // 2. and 3. Each row's precision and probabilities.
  for (var r = 0u; r < AFFINITY_ROWS; r++) {
    if (first + r < n) {
      calibrate((first + r) * k, k);
    }
  }
}

@compute @workgroup_size(WORKGROUP)
fn gradient(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let first = (gid.x + gid.y * groups.x * WORKGROUP) * GRADIENT_ROWS;
  let n = gradient_params.n;
  if (first >= n) {
    return;
  }
  var px: array<vec4f, GROUPS>;
  var py: array<vec4f, GROUPS>;
  for (var a = 0u; a < GROUPS; a++) {
    let i = four(first + 4u * a, n);
    let y0 = points[i.x];
    let y1 = points[i.y];
    let y2 = points[i.z];
    let y3 = points[i.w];
    px[a] = vec4f(y0.x, y1.x, y2.x, y3.x);
    py[a] = vec4f(y0.y, y1.y, y2.y, y3.y);
  }

  // All pairs, two points j per load: Z's shares and the repulsion. j == i adds w = 1 to z
  // (taken off below) and 0 to the repulsion.
  var z: array<vec4f, GROUPS>;
  var rx: array<vec4f, GROUPS>;
  var ry: array<vec4f, GROUPS>;
  for (var j = 0u; j < n; j += 2u) {
    let pair = positions[j / 2u];
    // An odd N's last vec4 holds one point: its second half counts for nothing.
    let second = select(0.0, 1.0, j + 1u < n);
    for (var a = 0u; a < GROUPS; a++) {
      let dx0 = px[a] - pair.x;
      let dy0 = py[a] - pair.y;
      let w0 = 1.0 / (1.0 + dx0 * dx0 + dy0 * dy0);
      let dx1 = px[a] - pair.z;
      let dy1 = py[a] - pair.w;
      let w1 = second / (1.0 + dx1 * dx1 + dy1 * dy1);
      z[a] += w0 + w1;
      let v0 = w0 * w0;
      let v1 = w1 * w1;
      rx[a] += v0 * dx0 + v1 * dx1;
      ry[a] += v0 * dy0 + v1 * dy1;
    }
  }

  // The kept pairs of each row, four entries at a time: attraction and the KL share.
  for (var r = 0u; r < GRADIENT_ROWS; r++) {
    let i = first + r;
    if (i >= n) {
      break;
    }
    let yi = points[i];
    var ax = vec4f(0.0);
    var ay = vec4f(0.0);
    var kl = vec4f(0.0);
    for (var e = row_start[i] / 4u; e < row_start[i + 1u] / 4u; e++) {
      let j = columns[e];
      let p = values[e];
      let y0 = points[j.x];
      let y1 = points[j.y];
      let y2 = points[j.z];
      let y3 = points[j.w];
      let dx = yi.x - vec4f(y0.x, y1.x, y2.x, y3.x);
      let dy = yi.y - vec4f(y0.y, y1.y, y2.y, y3.y);
      let w = 1.0 / (1.0 + dx * dx + dy * dy);
      ax += p * w * dx;
      ay += p * w * dy;
      if (gradient_params.with_kl != 0u) {
        kl += p * log(w);
      }
    }
    let a = r / 4u;
    let m = r & 3u;
    let attract = vec2f(dot(ax, vec4f(1.0)), dot(ay, vec4f(1.0)));
    forces[i] = vec4f(gradient_params.exaggeration * attract, rx[a][m], ry[a][m]);
    shares[i] = vec2f(z[a][m] - 1.0, dot(kl, vec4f(1.0)));
  }
}

@compute @workgroup_size(UPDATE_WORKGROUP)
fn update(@builtin(local_invocation_index) t: u32) {
  let n = update_params.n;
  var sum = vec2f(0.0);
  for (var i = t; i < n; i += UPDATE_WORKGROUP) {
    sum += update_shares[i];
  }
  partial[t] = sum;
  workgroupBarrier();
  for (var half = UPDATE_WORKGROUP / 2u; half > 0u; half /= 2u) {
    if (t < half) {
      partial[t] += partial[t + half];
    }
    workgroupBarrier();
  }
  let total = partial[0];
  if (t == 0u) {
    stats[0] = total;
  }
  if (update_params.apply == 0u) {
    return;
  }
  let z = max(total.x, 1e-30);
  for (var i = t; i < n; i += UPDATE_WORKGROUP) {
    let f = update_forces[i];
    let g = 4.0 * (f.xy - f.zw / z);
    var s = state[i];
    if (update_params.reset != 0u) {
      s = vec4f(0.0, 0.0, 1.0, 1.0);
    }
    let gain = max(select(s.zw * 0.8, s.zw + 0.2, s.xy * g < vec2f(0.0)), vec2f(MIN_GAIN));
    let step = update_params.momentum * s.xy - update_params.learning_rate * gain * g;
    moving[i] += step;
    state[i] = vec4f(step, gain);
  }
}
