"""Models: training/inference logic around a network. Each module is imported explicitly."""
from basicsr.models import fusion_model, optim  # noqa: F401  (register FusionModel, optimisers)
from basicsr.utils.registry import MODEL_REGISTRY

__all__ = ['MODEL_REGISTRY']
