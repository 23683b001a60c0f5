// The step counter that lives on the GPU, so that a whole training step is recorded once
// and replayed without writing anything from the CPU between steps.
// One invocation runs after the last kernel of a step and advances the counters:
//   advance_train: step += 1 (AdamW's t = step + 1 for the next step), batch += 1
//   advance_eval:  batch += 1 (an evaluation pass does not count as a training step)
// Kernels that read it (gather, cross_entropy, adamw) bind it read-only; WebGPU orders the
// dispatches of a pass, so they see the value of their own step.
// bindings: 0 state StepState (2 u32: step, batch)

struct StepState {
  step: u32,
  batch: u32,
}

@group(0) @binding(0) var<storage, read_write> state: StepState;

@compute @workgroup_size(1)
fn advance_train() {
  state.step += 1u;
  state.batch += 1u;
}

@compute @workgroup_size(1)
fn advance_eval() {
  state.batch += 1u;
}
