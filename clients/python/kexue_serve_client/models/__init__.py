"""Contains all the data models used in inputs/outputs"""

from .density_sample_request import DensitySampleRequest
from .density_sample_response import DensitySampleResponse
from .density_score_request import DensityScoreRequest
from .density_score_request_logdet import DensityScoreRequestLogdet
from .density_score_response import DensityScoreResponse
from .density_score_response_logdet import DensityScoreResponseLogdet
from .embedding import Embedding
from .embedding_request import EmbeddingRequest
from .embedding_request_encoding_format import EmbeddingRequestEncodingFormat
from .embedding_request_method_type_0 import EmbeddingRequestMethodType0
from .embedding_request_truncation_direction import EmbeddingRequestTruncationDirection
from .embedding_response import EmbeddingResponse
from .error_body import ErrorBody
from .generate_request import GenerateRequest
from .generate_response import GenerateResponse
from .generated_sample import GeneratedSample
from .generated_sample_finish_reason import GeneratedSampleFinishReason
from .health import Health
from .http_validation_error import HTTPValidationError
from .label_condition import LabelCondition
from .model_list import ModelList
from .model_status import ModelStatus
from .model_status_labels import ModelStatusLabels
from .model_status_manifest_type_0 import ModelStatusManifestType0
from .open_ai_error import OpenAIError
from .qa_candidate import QACandidate
from .qa_evidence import QAEvidence
from .qa_request import QARequest
from .qa_request_read_by_type_0 import QARequestReadByType0
from .qa_response import QAResponse
from .qa_response_finish_reason_type_0 import QAResponseFinishReasonType0
from .readiness import Readiness
from .readiness_status import ReadinessStatus
from .unavailable_model import UnavailableModel
from .usage import Usage
from .validation_error import ValidationError
from .validation_error_context import ValidationErrorContext
from .vector_condition import VectorCondition
from .version_state import VersionState
from .version_status import VersionStatus

__all__ = (
    "DensitySampleRequest",
    "DensitySampleResponse",
    "DensityScoreRequest",
    "DensityScoreRequestLogdet",
    "DensityScoreResponse",
    "DensityScoreResponseLogdet",
    "Embedding",
    "EmbeddingRequest",
    "EmbeddingRequestEncodingFormat",
    "EmbeddingRequestMethodType0",
    "EmbeddingRequestTruncationDirection",
    "EmbeddingResponse",
    "ErrorBody",
    "GeneratedSample",
    "GeneratedSampleFinishReason",
    "GenerateRequest",
    "GenerateResponse",
    "Health",
    "HTTPValidationError",
    "LabelCondition",
    "ModelList",
    "ModelStatus",
    "ModelStatusLabels",
    "ModelStatusManifestType0",
    "OpenAIError",
    "QACandidate",
    "QAEvidence",
    "QARequest",
    "QARequestReadByType0",
    "QAResponse",
    "QAResponseFinishReasonType0",
    "Readiness",
    "ReadinessStatus",
    "UnavailableModel",
    "Usage",
    "ValidationError",
    "ValidationErrorContext",
    "VectorCondition",
    "VersionState",
    "VersionStatus",
)
