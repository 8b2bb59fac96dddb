"""Model architectures as data: :class:`ModelSpec` (``spec``), read from Hugging Face configs
(``hf``) and from model files found by name (``files``). See ``infersim.model.spec`` for the
conventions (what is counted in parameters, KV bytes and FLOPs)."""

from infersim.model.files import list_models, load_hf_config, load_model, load_model_yaml
from infersim.model.hf import from_hf_config
from infersim.model.spec import ModelSpec

__all__ = ["ModelSpec", "from_hf_config", "list_models", "load_hf_config", "load_model",
           "load_model_yaml"]
