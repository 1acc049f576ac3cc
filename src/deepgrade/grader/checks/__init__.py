"""The checks autograders call: each returns the message shown when it passes, or raises CheckFailed.

- architecture: the layers, parameters, output shapes, kept baseline layers, the recurrent layer;
- metrics: accuracy, gap and gain against the profile's thresholds;
- regularization: what a model does against over-fitting, read from its configuration (the gap's gate);
- transfer: the course's base in the student's model, frozen or fine-tuned, and the new head.
"""

from ...errors import CheckFailed
from .architecture import (
                           REGULARIZATION_LAYERS,
                           SHAPING_LAYERS,
                           Layer,
                           Observed,
                           check_architecture,
                           check_keeps_layers,
                           check_output_shapes,
                           check_parameters,
                           check_recurrent,
                           expected_params,
                           expected_shapes,
                           observe,
)
from .metrics import check_accuracy, check_gain, check_gap, require_threshold
from .regularization import regularization_of
from .transfer import (
                           check_base_frozen,
                           check_base_used,
                           check_fine_tuning,
                           check_head_new,
                           find_base,
                           head_alone,
                           head_first,
                           head_layers,
                           restore,
)

__all__ = [
    "REGULARIZATION_LAYERS", "SHAPING_LAYERS", "CheckFailed", "Layer", "Observed", "check_accuracy",
    "check_architecture", "check_base_frozen", "check_base_used", "check_fine_tuning", "check_gain", "check_gap",
    "check_head_new", "check_keeps_layers", "check_output_shapes", "check_parameters", "check_recurrent",
    "expected_params", "expected_shapes", "find_base", "head_alone", "head_first", "head_layers", "observe",
    "regularization_of", "require_threshold", "restore",
]
