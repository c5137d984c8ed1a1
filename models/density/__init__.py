"""Invertible residual network density models: i-ResNet (Behrmann et al., ICML 2019) and the
Residual Flow's unbiased log-determinant (Chen et al., NeurIPS 2019).

The names below import their module on first use (`models.lazy_exports`): the SavedModel reader
(`models.density.reader`) runs without the Keras model code.
"""

from typing import Any

from models.lazy_exports import LazyExports

_EXPORTS = LazyExports(
    __name__,
    {
        "models.density.activations": ["LipSwish", "make_activation"],
        "models.density.actnorm": ["ActNorm"],
        "models.density.data": [
            "TOY_DATASETS", "bits_per_dim", "checkerboard", "circles", "eight_gaussians",
            "inverse_logit_transform", "logit_transform", "sample_toy", "two_moons",
            "uniform_dequantize",
        ],
        "models.density.export": ["DensityModule", "export_density_saved_model"],
        "models.density.iresnet_flow": ["FlowInverse", "IResNetFlow", "standard_normal_log_prob"],
        "models.density.logdet": [
            "LogDetConfig", "exact_logdet", "hutchinson_logdet",
            "power_series_logdet_from_jacobian", "residual_logdet", "roulette_survival",
            "russian_roulette_logdet", "sample_probes", "sample_roulette_terms",
            "truncation_error_bound",
        ],
        "models.density.preprocessing": ["Preprocessing"],
        "models.density.reader": ["SavedModelDensity"],
        "models.density.residual_block": [
            "FixedPointResult", "InvertibleResidualBlock", "fixed_point_inverse",
        ],
        "models.density.row_random": ["RowSharedStatelessGenerator"],
        "models.density.sampling": ["sample_data"],
        "models.density.scoring": ["data_log_prob", "score_data"],
        "models.density.spectral_norm": [
            "SpectralNormConv2D", "SpectralNormDense", "conv2d_operator_matrix",
            "exact_spectral_norm",
        ],
    },
)  # fmt: skip
__all__ = _EXPORTS.names


def __getattr__(name: str) -> Any:
    return _EXPORTS.resolve(name)
