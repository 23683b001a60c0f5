/**
 * A Conv2d whose output maps read only some of the input maps, as a connection table says:
 * LeNet-5's C3 (LeCun, Bottou, Bengio, Haffner 1998, "Gradient-based learning applied to
 * document recognition", Table I). The kernels compute only the connections that exist.
 * Kernels: kernels/conv2d_table.wgsl.
 *
 * Parameter layout: `weight` [E, R, R], one R x R kernel per connection, the connections
 * packed in table order (output map k ascending, then its input maps ascending), and `bias`
 * [K]. For C3: features.3.weight [60, 5, 5] + features.3.bias [16] = 1,516 parameters,
 * where the dense Conv2d(6, 16, 5) has 2,416. This is not PyTorch's Conv2d layout
 * ([K, C, R, R]): a checkpoint with a table layer does not load into the seed's PyTorch
 * LeNet5 (load_state_dict reports a size mismatch); scattering each kernel to [k, c] of a
 * zero [K, C, R, R] weight gives the equal dense Conv2d.
 *
 * Speed: the table does 60/96 of the dense Conv2d's multiply-adds, which is what a GPU pays
 * for. llvmpipe pays for storage loads instead (one costs many multiply-adds): each input
 * value kernels/conv2d.wgsl loads feeds all 16 output maps, and it reads its weights
 * through a uniform binding, while each input value these kernels load feeds one
 * connection (an S2 map is read by 10) and their weights are storage loads; so there they
 * take 2-4 times as long as the dense ones (bench/conv2d_table_bench.ts), and the CPU wing
 * runs the layer as the dense conv with zeros for the missing connections
 * (lib/cpu/conv2d_table.ts).
 * @module
 */

import { grid, kernel, type Op, op, tensor, uniform } from "../runtime.ts";
import type { Layer, LayerContext, LayerOps } from "./layer.ts";

/** Invocations per workgroup, for every entry point. */
const WORKGROUP = 64;
/** Outputs per invocation of forward and backward_input: 8 columns of one row. */
const BLOCK = 8;

/**
 * Table I of LeCun et al. 1998: the S2 maps (0-5) that each C3 map (0-15) reads.
 * ```
 *        C3:  0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15
 *   S2 0      X       X X X     X  X  X  X     X  X
 *   S2 1      X X       X X X      X  X  X  X     X
 *   S2 2      X X X       X X X       X     X  X  X
 *   S2 3        X X X     X X X X        X     X  X
 *   S2 4          X X X     X X X  X     X  X     X
 *   S2 5            X X X     X X  X  X     X  X  X
 * ```
 * Maps 0-5 read 3 contiguous S2 maps, 6-11 read 4 contiguous ones, 12-14 read 4
 * non-contiguous ones and 15 reads all 6: 60 connections. (Contiguous wraps: map 4 reads
 * 4, 5 and 0.) Each row here lists its maps ascending: the order of the weight's kernels.
 */
export const LECUN_C3_TABLE: readonly (readonly number[])[] = [
  [0, 1, 2],
  [1, 2, 3],
  [2, 3, 4],
  [3, 4, 5],
  [0, 4, 5],
  [0, 1, 5],
  [0, 1, 2, 3],
  [1, 2, 3, 4],
  [2, 3, 4, 5],
  [0, 3, 4, 5],
  [0, 1, 4, 5],
  [0, 1, 2, 5],
  [0, 1, 3, 4],
  [1, 2, 4, 5],
  [0, 2, 3, 5],
  [0, 1, 2, 3, 4, 5],
];

/** What a table Conv2d layer was made with (its `config`, for a tier's own build). */
export interface Conv2dTableConfig {
  inChannels: number;
  outChannels: number;
  kernelSize: number;
  table: readonly (readonly number[])[];
}

/** What a table Conv2d is. */
export interface Conv2dTableOptions {
  inChannels: number;
  /** `table[k]`: the input maps output map k reads, ascending, each once. */
  table: readonly (readonly number[])[];
  /** R: the kernels are R x R, 1 <= R <= 8 (backward_weight keeps 8 taps of a row). */
  kernelSize: number;
}

/**
 * A table Conv2d layer: x [N,C,H,W] -> y [N,K,H-R+1,W-R+1] (stride 1, no padding), K =
 * table.length. Parameters: `weight` [E,R,R] (E connections, in table order) and `bias` [K],
 * both uniform in +-1/sqrt(C*R*R) at init: PyTorch's bound for the dense Conv2d(C, K, R)
 * that this one equals with zeros for the missing connections. One dispatch forward; the
 * backward is one for dx (when a layer below needs it) and one for the weight and bias.
 *
 * @example
 * ```ts
 * const c3 = conv2dTable({ inChannels: 6, table: LECUN_C3_TABLE, kernelSize: 5 });
 * c3.params[0].shape; // [60, 5, 5]
 * c3.outputShape([32, 6, 14, 14]); // [32, 16, 10, 10]
 * ```
 */
export function conv2dTable(options: Conv2dTableOptions): Layer {
  const { inChannels, table, kernelSize } = options;
  const outChannels = table.length;
  if (!Number.isInteger(inChannels) || inChannels < 1 || outChannels < 1) {
    throw new Error(`Conv2dTable: ${inChannels} input maps and ${outChannels} table rows`);
  }
  if (!Number.isInteger(kernelSize) || kernelSize < 1 || kernelSize > 8) {
    throw new Error(`Conv2dTable: kernel size ${kernelSize} is not an integer in 1..8`);
  }
  table.forEach((inputs, k) => {
    const ascending = inputs.every((c, i) => i === 0 || c > inputs[i - 1]);
    const inside = inputs.every((c) => Number.isInteger(c) && c >= 0 && c < inChannels);
    if (inputs.length === 0 || !ascending || !inside) {
      throw new Error(
        `Conv2dTable: table[${k}] = [${inputs}] is not a non-empty ascending list of maps 0..${
          inChannels - 1
        }`,
      );
    }
  });
  const connections = table.reduce((a, inputs) => a + inputs.length, 0);
  const bound = 1 / Math.sqrt(inChannels * kernelSize * kernelSize);
  const outputShape = (input: number[]): number[] => {
    const [n, c, h, w] = input;
    if (input.length !== 4 || c !== inChannels) {
      throw new Error(
        `Conv2dTable(${inChannels}, ${outChannels}): input [${input}] is not [N,C,H,W]`,
      );
    }
    if (h < kernelSize || w < kernelSize) {
      throw new Error(
        `Conv2dTable: input [${input}] is smaller than the ${kernelSize}x${kernelSize} kernel`,
      );
    }
    return [n, outChannels, h - kernelSize + 1, w - kernelSize + 1];
  };
  const config: Conv2dTableConfig = { inChannels, outChannels, kernelSize, table };
  return {
    type: "Conv2dTable",
    family: "conv2d_table",
    config: { ...config },
    params: [
      {
        name: "weight",
        shape: [connections, kernelSize, kernelSize],
        init: { uniform: bound },
        trainable: true,
      },
      { name: "bias", shape: [outChannels], init: { uniform: bound }, trainable: true },
    ],
    outputShape,
    flops: (input) => {
      const [n, , p, q] = outputShape(input);
      return 2 * n * p * q * connections * kernelSize * kernelSize;
    },
    build: (ctx) => build(ctx, { table, kernelSize, connections, outputShape }),
  };
}

/**
 * The table as the kernels read it (see kernels/conv2d_table.wgsl): out_start [K+1],
 * in_start [C+1], channel [E], output [E], in_list [E], one after the other.
 *
 * @example
 * ```ts
 * conv2dTableWords([[0], [0, 1]], 2); // [0, 1, 3,  0, 2, 3,  0, 0, 1,  0, 1, 1,  0, 1, 2]
 * ```
 */
export function conv2dTableWords(
  table: readonly (readonly number[])[],
  inChannels: number,
): Uint32Array<ArrayBuffer> {
  const channel = table.flat();
  const output = table.flatMap((inputs, k) => inputs.map(() => k));
  const outStart = [0];
  for (const inputs of table) outStart.push(outStart.at(-1)! + inputs.length);
  // Connections grouped by input map; within a map in connection order, so k ascending.
  const inList: number[] = [];
  const inStart = [0];
  for (let c = 0; c < inChannels; c++) {
    channel.forEach((ch, e) => ch === c && inList.push(e));
    inStart.push(inList.length);
  }
  return Uint32Array.from([...outStart, ...inStart, ...channel, ...output, ...inList]);
}

/**
 * Lanes of backward_weight that split the reduction of one block over the N*P rows of dy:
 * as many as keep each lane at least 4 rows, up to the whole workgroup.
 */
function splitFor(rows: number): number {
  let split = 1;
  while (split < WORKGROUP && rows / (split * 2) >= 4) split *= 2;
  return split;
}

// x [N,C,H,W], weight [E,R,R], bias [K] -> y [N,K,P,Q]
// dy [N,K,P,Q], weight -> dx [N,C,H,W];  dy, x -> dweight [E,R,R], dbias [K]
async function build(
  ctx: LayerContext,
  config: {
    table: readonly (readonly number[])[];
    kernelSize: number;
    connections: number;
    outputShape: (input: number[]) => number[];
  },
): Promise<LayerOps> {
  const { rt, x, y, dy, dx, params, grads } = ctx;
  const [batch, channels, height, width] = x.shape;
  const [, outChannels, outHeight, outWidth] = config.outputShape(x.shape);
  const expected = [batch, outChannels, outHeight, outWidth];
  if (y.shape.join() !== expected.join() || dy.shape.join() !== expected.join()) {
    throw new Error(`Conv2dTable: y [${y.shape}] and dy [${dy.shape}] are not [${expected}]`);
  }
  const words = conv2dTableWords(config.table, channels);
  const table = tensor(rt, [words.length], { dtype: "u32", label: "conv2d table" });
  rt.device.queue.writeBuffer(table.buffer, 0, words);
  // Fields as in the WGSL struct Params, in its order.
  const u = uniform(rt, "conv2d_table", {
    batch,
    in_channels: channels,
    height,
    width,
    out_channels: outChannels,
    out_height: outHeight,
    out_width: outWidth,
    connections: config.connections,
  });
  const blocks = (n: number) => Math.ceil(n / BLOCK);
  const KERNEL = config.kernelSize;
  const split = splitFor(batch * outHeight);
  const [forwardK, inputK, weightK] = await Promise.all([
    kernel(rt, "conv2d_table.wgsl", "forward", { WORKGROUP, KERNEL }),
    kernel(rt, "conv2d_table.wgsl", "backward_input", { WORKGROUP, KERNEL }),
    kernel(rt, "conv2d_table.wgsl", "backward_weight", { WORKGROUP, KERNEL, SPLIT: split }),
  ]);
  const forward = op(
    rt,
    forwardK,
    [x, params.weight, params.bias, y, table, u],
    grid(outChannels * batch * outHeight * blocks(outWidth), WORKGROUP),
  );
  const backward: Op[] = [];
  if (dx) {
    backward.push(
      op(
        rt,
        inputK,
        [dy, params.weight, dx, table, u],
        grid(channels * batch * height * blocks(width), WORKGROUP),
      ),
    );
  }
  // One block per (connection, kernel row), and one per bias.
  const weightBlocks = config.connections * config.kernelSize + outChannels;
  backward.push(
    op(
      rt,
      weightK,
      [x, dy, grads.weight, grads.bias, table, u],
      grid(weightBlocks, WORKGROUP / split),
    ),
  );
  return { train: [forward], eval: [forward], backward, saved: {} };
}
