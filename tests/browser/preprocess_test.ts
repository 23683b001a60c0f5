import assert from "node:assert/strict";
import { boundingBox, mnistInput } from "../../web/preprocess.ts";

/** A canvas-sized ink image with a filled rectangle. */
function rectangle(size: number, box: { x: number; y: number; w: number; h: number }) {
  const ink = new Float32Array(size * size);
  for (let y = box.y; y < box.y + box.h; y++) {
    for (let x = box.x; x < box.x + box.w; x++) ink[y * size + x] = 1;
  }
  return ink;
}

function extent(pixels: Float32Array) {
  return boundingBox(pixels, { width: 28, height: 28 })!;
}

function centreOfMass(pixels: Float32Array) {
  let mass = 0, x = 0, y = 0;
  pixels.forEach((v, i) => {
    mass += v;
    x += v * ((i % 28) + 0.5);
    y += v * (Math.floor(i / 28) + 0.5);
  });
  return { x: x / mass, y: y / mass };
}

Deno.test("mnistInput scales a tall stroke to 20 pixels high and keeps its aspect ratio", () => {
  // 200x40 pixels in the corner of a 280x280 canvas: 20x4 after scaling.
  const input = mnistInput(rectangle(280, { x: 5, y: 60, w: 40, h: 200 }), {
    width: 280,
    height: 280,
  });
  const box = extent(input);
  assert.equal(box.height, 20);
  assert.equal(box.width, 4);
  assert.ok(Math.abs(input.reduce((a, b) => a + b, 0) - 80) < 1e-3, "ink is conserved");
});

Deno.test("mnistInput centres the digit by its centre of mass, not its box", () => {
  // An L: a heavy foot makes the centre of mass sit low and right of the box's centre.
  const size = 100;
  const ink = rectangle(size, { x: 10, y: 10, w: 10, h: 80 });
  const foot = rectangle(size, { x: 10, y: 70, w: 70, h: 20 });
  foot.forEach((v, i) => ink[i] = Math.max(ink[i], v));
  const input = mnistInput(ink, { width: size, height: size });
  const com = centreOfMass(input);
  assert.ok(Math.abs(com.x - 14) <= 0.5 && Math.abs(com.y - 14) <= 0.5, JSON.stringify(com));
  const box = extent(input);
  assert.equal(Math.max(box.width, box.height), 20);
  assert.notEqual(box.x + box.width / 2, 14, "the box itself is off centre");
});

Deno.test("mnistInput scales a small drawing up and gives zeros for an empty canvas", () => {
  const input = mnistInput(rectangle(50, { x: 20, y: 20, w: 5, h: 5 }), { width: 50, height: 50 });
  assert.deepEqual(extent(input), { x: 4, y: 4, width: 20, height: 20 });
  assert.ok(input.every((v) => v === 0 || v === 1));
  assert.ok(mnistInput(new Float32Array(64), { width: 8, height: 8 }).every((v) => v === 0));
  assert.throws(() => mnistInput(new Float32Array(10), { width: 8, height: 8 }), /10 values/);
});
