"""Invertible residual network density models: i-ResNet (Behrmann et al., ICML 2019) and the
Residual Flow's unbiased log-determinant (Chen et al., NeurIPS 2019)."""

from models.density.activations import LipSwish, make_activation
from models.density.actnorm import ActNorm
from models.density.data import (
    TOY_DATASETS,
    bits_per_dim,
    checkerboard,
    circles,
    eight_gaussians,
    inverse_logit_transform,
    logit_transform,
    sample_toy,
    two_moons,
    uniform_dequantize,
)
from models.density.export import (
    DensityModule,
    Preprocessing,
    RowSharedStatelessGenerator,
    SavedModelDensity,
    data_log_prob,
    export_density_saved_model,
    sample_data,
    score_data,
)
from models.density.iresnet_flow import FlowInverse, IResNetFlow, standard_normal_log_prob
from models.density.logdet import (
    LogDetConfig,
    exact_logdet,
    hutchinson_logdet,
    power_series_logdet_from_jacobian,
    residual_logdet,
    roulette_survival,
    russian_roulette_logdet,
    sample_probes,
    sample_roulette_terms,
    truncation_error_bound,
)
from models.density.residual_block import (
    FixedPointResult,
    InvertibleResidualBlock,
    fixed_point_inverse,
)
from models.density.spectral_norm import (
    SpectralNormConv2D,
    SpectralNormDense,
    conv2d_operator_matrix,
    exact_spectral_norm,
)

__all__ = [
    "TOY_DATASETS",
    "ActNorm",
    "DensityModule",
    "FixedPointResult",
    "FlowInverse",
    "IResNetFlow",
    "InvertibleResidualBlock",
    "LipSwish",
    "LogDetConfig",
    "Preprocessing",
    "RowSharedStatelessGenerator",
    "SavedModelDensity",
    "SpectralNormConv2D",
    "SpectralNormDense",
    "bits_per_dim",
    "checkerboard",
    "circles",
    "conv2d_operator_matrix",
    "data_log_prob",
    "eight_gaussians",
    "exact_logdet",
    "exact_spectral_norm",
    "export_density_saved_model",
    "fixed_point_inverse",
    "hutchinson_logdet",
    "inverse_logit_transform",
    "logit_transform",
    "make_activation",
    "power_series_logdet_from_jacobian",
    "residual_logdet",
    "roulette_survival",
    "russian_roulette_logdet",
    "sample_probes",
    "sample_data",
    "sample_roulette_terms",
    "sample_toy",
    "score_data",
    "standard_normal_log_prob",
    "truncation_error_bound",
    "two_moons",
    "uniform_dequantize",
]
