"""The density SavedModel's contract: signature, input and output names (no TensorFlow here, so
that readers and the service can name them without the model code).

The SavedModel stands alone (no Keras, no project code needed to call it). Inputs and outputs are
in the units of the training data: the preprocessing (dequantisation scale, logit transform,
per-feature standardisation; `models.density.preprocessing.Preprocessing`) is part of the
exported graph. Shapes: B rows, D dimensions, N samples, L residual blocks.

Signatures (argument names are the input tensor names; outputs are dicts):

* `score(x float32 [B, D])` -> `log_prob` float32 [B], `bits_per_dim` float32 [B]; the residual
  blocks' log-determinants by the truncated power series with Hutchinson's trace estimator
  (Behrmann et al., "Invertible Residual Networks", ICML 2019, Sec. 3), with a fixed number of
  terms and probes and probes drawn from a fixed seed. The probes are the same for every row
  (`models.density.row_random.RowSharedStatelessGenerator`), so a row's score does not depend on
  the rest of the batch and identical inputs always give identical outputs. Also
  `serving_default`.
* `score_exact(x float32 [B, D])` -> the same, each block's log det(I + J_g) from its full
  Jacobian (D backward passes and a D x D determinant per row; meant for small D).
* `sample(num_samples int32 [], seed int64 [])` -> `samples` float32 [N, D] in data units,
  `iterations` int32 [L] (fixed-point steps each block's inverse took, in forward order) and
  `last_change` float32 [L] (each block's last max |x_{i+1} - x_i|; at most the tolerance when
  it converged). z ~ N(0, I) from a stateless generator, so the same seed gives the same samples.

The module also holds two int32 variables, `input_dim` (D) and `levels` (K, 0 for continuous
data), so that a loaded SavedModel tells its shape and discreteness.

What `log_prob` is (nats):

* continuous data: log p(x), the model's density of the data in their own units (the flow's
  density plus the log-determinant of the standardisation);
* discrete data with K levels (trained on the dequantised v = x + u, u ~ U[0, 1)^D, fed to the
  flow as v / K): log p_V(x + 1/2), the dequantised density at the centre of x's unit bin. A bin
  has volume 1, so this is the midpoint estimate of log P(x) = log int_bin p_V, and
  `bits_per_dim` = -log_prob / (D ln 2) is bits per dimension of the discrete data, the same
  quantity as `models.density.data.bits_per_dim(log p(v / K), D, K)` (Theis et al., ICLR 2016)
  but at u = 1/2 instead of averaged over u. Values outside [0, K-1] get -inf. `sample` returns
  discrete values there too: floor(v) clipped to [0, K-1].

In both cases `bits_per_dim` = -log_prob / (D ln 2).
"""

SIGNATURE_SCORE = "score"
SIGNATURE_SCORE_EXACT = "score_exact"
SIGNATURE_SAMPLE = "sample"
SIGNATURE_DEFAULT = "serving_default"
LOG_PROB_KEY = "log_prob"
BITS_PER_DIM_KEY = "bits_per_dim"
SAMPLES_KEY = "samples"
ITERATIONS_KEY = "iterations"
LAST_CHANGE_KEY = "last_change"
