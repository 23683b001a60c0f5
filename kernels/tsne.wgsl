// t-SNE with the exact gradient (van der Maaten & Hinton 2008, as scikit-learn's TSNE):
// input affinities from each point's k nearest neighbours, then gradient descent on the 2-D
// positions y. The gradient, with w_ij = 1 / (1 + |y_i - y_j|^2), Z = sum_{i != j} w_ij,
// q_ij = w_ij / Z and the early exaggeration a:
//   dC/dy_i = 4 sum_j (a p_ij - q_ij) w_ij (y_i - y_j) = 4 (attract_i - repulse_i / Z),
//   attract_i = a sum_{j in row i} p_ij w_ij (y_i - y_j)    (the kept pairs of P only)
//   repulse_i = sum_{j != i} w_ij^2 (y_i - y_j)              (all pairs: O(N) per point)
// Four entry points, two to set up and two per iteration:
//
// nearest: one invocation per AFFINITY_ROWS points i (two groups of 4): the k nearest
//   neighbours j != i of each by squared distance d_ij = |x_i - x_j|^2, kept in a max-heap
//   over row i of `neighbours` and `row` (the root holds the farthest one kept). Each
//   dispatch takes the candidates j in [j_begin, j_end); the first one empties the heaps.
//
// calibrate: one invocation per point i, on its row of k distances: the precision beta_i
//   by bisection, as scikit-learn's _binary_search_perplexity (start at 1, double or halve
//   until bracketed, then bisect; stop when |H - log(perplexity)| <= 1e-5 or after 100
//   evaluations, H the row's entropy in nats), then row i := p_{j|i} = e_j / sum_j e_j,
//   e_j = exp(-(d_ij - d_min) * beta_i), H = log(sum_j e_j) + beta * sum_j (d_ij - d_min) p_j.
//   Shifting by the row's smallest distance d_min leaves p and H unchanged, and keeps
//   sum_j e_j >= 1 in f32, where exp(-d * beta) alone underflows for wide data. (A pass of
//   its own: 8 rows of up to 100 x k steps in one invocation overrun llvmpipe's loop budget.)
//
// gradient: two kinds of workgroups in one dispatch (so that they share the cores, and an
//   iteration pays for one dispatch less: 10% here).
//   - the first params.repulse_groups: one invocation per REPULSE_ROWS points i (GROUPS
//     groups of 4) and slice of points j: repulse_i and z_i = sum_{j != i} w_ij, Z's
//     share, over the slice (Z needs every point: `update` adds the shares and slices);
//   - the rest: one invocation per point i, over its row of P (CSR, 4 entries per step):
//     attract_i and, with params.with_kl, kl_i = sum_j p_ij log(w_ij), for
//     KL(P||Q) = sum p log p - sum_i kl_i + (sum p) log Z (the host adds the first term).
//
// update: ONE workgroup for all points (the work is O(N), and one workgroup can sum Z).
//   Z = sum_i z_i (all slices), then scikit-learn's _gradient_descent for each coordinate:
//   g = 4 (attract - repulse / Z); gain += 0.2 where the last step and g differ in sign,
//   else gain *= 0.8, at least 0.01; step = momentum * step - learning_rate * gain * g;
//   y += step. With params.reset, step starts at 0 and gain at 1 (a new phase). With
//   params.apply = 0 it only sums Z and the KL shares (the final evaluation).
//
// llvmpipe shapes these passes. It ends every loop of an invocation, silently, once 65,535
// loop steps (all loops together) have run (Mesa's LP_MAX_TGSI_LOOP_ITERATIONS): hence the
// slices of `nearest` and of the repulsion, sized by the host to stay within it (a single
// pass over 5,000 candidates kept the wrong neighbours). A load whose address differs
// between invocations costs ~10-30 ns, while one that is the same for all (y_j in a loop
// over j) is nearly free. So the repulsion keeps 32 rows' sums in registers against each
// y_j (6x faster than 1 row); rows past N are clamped to the last point and not written.
// The attraction cannot avoid its per-row loads (~25 ns a pair of P, 70% of an iteration
// at N = 1,000); one row per invocation spreads them evenly over the cores (in the
// repulsion's invocations, 32 rows each, an iteration took 20% longer).
//
// Index legend: i a point an invocation owns, j another point, a a group of 4 rows, m the
// row within a group (a vec4 holds one value of each of the 4 rows), s a slot 0..k-1 of a
// neighbour row, e a vec4 of entries of the CSR arrays, q a group of 4 input dimensions,
// t invocation in a workgroup, w the workgroup. Flat invocation index (nearest, calibrate)
// gid.x + gid.y * num_workgroups.x * WORKGROUP (a 2-D grid).
//
// nearest bindings: 0 data [N,Q*4] (each point's D values, zero-padded to Q*4),
//   1 neighbours [N,k] u32 (written), 2 row [N,k] f32 (written: the distances), 3 params.
// calibrate bindings: 0 row [N,k] (read-write: distances in, p_{j|i} out), 1 params.
// gradient bindings: 0 positions [ceil(N/2)*2, 2] as vec4s (two points each; the padding
//   is 0), 1 the same buffer as vec2s, 2 row_start [N+1] u32 (multiples of 4), 3 columns
//   [nnz] u32, 4 values [nnz] f32 (p_ij, summing to 1; each row padded to a multiple of 4
//   entries with p = 0), 5 repulsion [slices,N,4] (written: repulse_i, z_i, 0 of each
//   slice), 6 attraction [N,4] (written: attract_i, kl_i, 0), 7 params.
// update bindings: 0 positions [N,2] (read-write), 1 attraction [N,4], 2 repulsion
//   [slices,N,4], 3 state [N,4] (read-write: step, gain), 4 stats [2] (written: Z and
//   sum_i kl_i), 5 params.

override WORKGROUP: u32 = 8;
// The update's single workgroup; a power of two (its sums are a tree).
override UPDATE_WORKGROUP: u32 = 256;

// Rows per invocation: nearest 2 groups of 4, the repulsion GROUPS groups of 4.
const AFFINITY_ROWS = 8u;
const GROUPS = 8u;
const REPULSE_ROWS = 32u;
// Inputs of up to 4 * MAX_QUADS dimensions (the logits: 10) keep the rows' own coordinates
// in registers; wider ones read them from memory for every pair (correct, slower).
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
  // nearest: the candidates j of this dispatch; the heaps start empty when j_begin is 0.
  j_begin: u32,
  j_end: u32,
}

struct GradientParams {
  n: u32,
  // Points j per slice (even): slice s covers j in [s * slice, (s + 1) * slice).
  slice: u32,
  // Workgroups of the repulsion (blocks x slices); the rest compute the attraction.
  repulse_groups: u32,
  exaggeration: f32,
  // 1 to compute the KL shares kl_i as well.
  with_kl: u32,
}

struct UpdateParams {
  n: u32,
  // Slices of the repulsion: partial sums to add.
  slices: u32,
  momentum: f32,
  learning_rate: f32,
  // 1 on the first iteration of a phase: step 0, gain 1.
  reset: u32,
  // 0 to sum Z and the KL shares without moving the points.
  apply: u32,
}

// nearest
@group(0) @binding(0) var<storage, read> data: array<vec4f>;
@group(0) @binding(1) var<storage, read_write> neighbours: array<u32>;
@group(0) @binding(2) var<storage, read_write> row: array<f32>;
@group(0) @binding(3) var<uniform> affinity_params: AffinityParams;

// calibrate
@group(0) @binding(0) var<storage, read_write> conditional: array<f32>;
@group(0) @binding(1) var<uniform> calibrate_params: AffinityParams;

// gradient
@group(0) @binding(0) var<storage, read> positions: array<vec4f>;
// The same buffer as `positions`, one point at a time (a vec4 gather costs 2.5x a vec2's).
@group(0) @binding(1) var<storage, read> points: array<vec2f>;
@group(0) @binding(2) var<storage, read> row_start: array<u32>;
@group(0) @binding(3) var<storage, read> columns: array<vec4u>;
@group(0) @binding(4) var<storage, read> values: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> repulsion: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> attraction: array<vec4f>;
@group(0) @binding(7) var<uniform> gradient_params: GradientParams;

// update
@group(0) @binding(0) var<storage, read_write> moving: array<vec2f>;
@group(0) @binding(1) var<storage, read> update_attraction: array<vec4f>;
@group(0) @binding(2) var<storage, read> update_repulsion: array<vec4f>;
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

// Squared distances of 4 points (a quad_of) to one point's dimensions 4q..4q+3 (v), in part.
fn quad_distance(own: mat4x4f, v: vec4f) -> vec4f {
  let e = own - mat4x4f(vec4f(v.x), vec4f(v.y), vec4f(v.z), vec4f(v.w));
  return e[0] * e[0] + e[1] * e[1] + e[2] * e[2] + e[3] * e[3];
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
fn calibrate_row(base: u32, k: u32) {
  var closest = FLOAT_MAX;
  for (var s = 0u; s < k; s++) {
    closest = min(closest, conditional[base + s]);
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
      let d = conditional[base + s] - closest;
      let e = exp(-d * beta);
      sum += e;
      weighted += d * e;
    }
    let entropy = log(sum) + beta * weighted / sum;
    let excess = entropy - calibrate_params.log_perplexity;
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
    conditional[base + s] = exp(-(conditional[base + s] - closest) * beta) / sum;
  }
}

@compute @workgroup_size(WORKGROUP)
fn nearest(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let first = (gid.x + gid.y * groups.x * WORKGROUP) * AFFINITY_ROWS;
  let n = affinity_params.n;
  let quads = affinity_params.quads;
  let k = affinity_params.k;
  if (first >= n) {
    return;
  }
  let rows0 = four(first, n);
  let rows1 = four(first + 4u, n);
  if (affinity_params.j_begin == 0u) {
    for (var i = first; i < min(first + AFFINITY_ROWS, n); i++) {
      for (var s = 0u; s < k; s++) {
        row[i * k + s] = FLOAT_MAX;
        neighbours[i * k + s] = i;
      }
    }
  }
  // Up to 16 dimensions, the 8 rows' coordinates stay in registers: named, not an array,
  // which llvmpipe would index with a load per lane.
  let cached = quads <= MAX_QUADS;
  let last = quads - 1u;
  let own00 = quad_of(rows0, 0u);
  let own01 = quad_of(rows1, 0u);
  let own10 = quad_of(rows0, min(1u, last));
  let own11 = quad_of(rows1, min(1u, last));
  let own20 = quad_of(rows0, min(2u, last));
  let own21 = quad_of(rows1, min(2u, last));
  let own30 = quad_of(rows0, min(3u, last));
  let own31 = quad_of(rows1, min(3u, last));

  // 1. The k nearest: a candidate closer than a row's root replaces it and sinks into place.
  // far0, far1: each row's root; -1 for rows past N, so that nothing ever enters them.
  let ids = vec4u(0u, 1u, 2u, 3u);
  let root0 = rows0 * k;
  let root1 = rows1 * k;
  var far0 = vec4f(row[root0.x], row[root0.y], row[root0.z], row[root0.w]);
  var far1 = vec4f(row[root1.x], row[root1.y], row[root1.z], row[root1.w]);
  far0 = select(far0, vec4f(-1.0), vec4u(first) + ids >= vec4u(n));
  far1 = select(far1, vec4f(-1.0), vec4u(first + 4u) + ids >= vec4u(n));
  for (var j = affinity_params.j_begin; j < affinity_params.j_end; j++) {
    var d0 = vec4f(0.0);
    var d1 = vec4f(0.0);
    let at = j * quads;
    if (cached) {
      d0 = quad_distance(own00, data[at]);
      d1 = quad_distance(own01, data[at]);
      if (quads > 1u) {
        d0 += quad_distance(own10, data[at + 1u]);
        d1 += quad_distance(own11, data[at + 1u]);
      }
      if (quads > 2u) {
        d0 += quad_distance(own20, data[at + 2u]);
        d1 += quad_distance(own21, data[at + 2u]);
      }
      if (quads > 3u) {
        d0 += quad_distance(own30, data[at + 3u]);
        d1 += quad_distance(own31, data[at + 3u]);
      }
    } else {
      for (var q = 0u; q < quads; q++) {
        d0 += quad_distance(quad_of(rows0, q), data[at + q]);
        d1 += quad_distance(quad_of(rows1, q), data[at + q]);
      }
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

}

@compute @workgroup_size(WORKGROUP)
fn calibrate(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) groups: vec3u) {
  let i = gid.x + gid.y * groups.x * WORKGROUP;
  if (i < calibrate_params.n) {
    calibrate_row(i * calibrate_params.k, calibrate_params.k);
  }
}

// Repulsion and z of the REPULSE_ROWS points from `first`, over the points j of `slice`.
fn repulse(first: u32, slice: u32) {
  let n = gradient_params.n;
  let j_begin = slice * gradient_params.slice;
  let j_end = min(n, j_begin + gradient_params.slice);
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

  // Two points j per load (slices hold an even count). j == i adds w = 1 to z (taken off
  // below) and 0 to the repulsion.
  var z: array<vec4f, GROUPS>;
  var rx: array<vec4f, GROUPS>;
  var ry: array<vec4f, GROUPS>;
  for (var j = j_begin; j < j_end; j += 2u) {
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
  for (var a = 0u; a < GROUPS; a++) {
    for (var m = 0u; m < 4u; m++) {
      let i = first + 4u * a + m;
      if (i < n) {
        // The pair j == i, in the slice that holds i, added 1 to z.
        let own = select(0.0, 1.0, i >= j_begin && i < j_end);
        repulsion[slice * n + i] = vec4f(rx[a][m], ry[a][m], z[a][m] - own, 0.0);
      }
    }
  }
}

// Attraction and KL share of point i over its row of P.
fn attract(i: u32) {
  if (i >= gradient_params.n) {
    return;
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
  let one = vec4f(1.0);
  attraction[i] = vec4f(gradient_params.exaggeration * vec2f(dot(ax, one), dot(ay, one)), dot(kl, one), 0.0);
}

// One dispatch for both parts of the gradient: workgroups [0, repulse_groups) compute the
// repulsion (block w % blocks over slice w / blocks), the rest the attraction, so that both
// share the cores and an iteration pays for one dispatch less.
@compute @workgroup_size(WORKGROUP)
fn gradient(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) t: u32) {
  let w = wid.x;
  let repulse_groups = gradient_params.repulse_groups;
  if (w < repulse_groups) {
    let blocks = (gradient_params.n + REPULSE_ROWS * WORKGROUP - 1u) / (REPULSE_ROWS * WORKGROUP);
    repulse(((w % blocks) * WORKGROUP + t) * REPULSE_ROWS, w / blocks);
  } else {
    attract((w - repulse_groups) * WORKGROUP + t);
  }
}

@compute @workgroup_size(UPDATE_WORKGROUP)
fn update(@builtin(local_invocation_index) t: u32) {
  let n = update_params.n;
  var sum = vec2f(0.0);
  for (var i = t; i < n; i += UPDATE_WORKGROUP) {
    for (var slice = 0u; slice < update_params.slices; slice++) {
      sum.x += update_repulsion[slice * n + i].z;
    }
    sum.y += update_attraction[i].z;
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
    var push = vec2f(0.0);
    for (var slice = 0u; slice < update_params.slices; slice++) {
      push += update_repulsion[slice * n + i].xy;
    }
    let g = 4.0 * (update_attraction[i].xy - push / z);
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
