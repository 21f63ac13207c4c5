"""The one name the flat model files need that moved between transformers 4.x and 5.x.

transformers 5 has `transformers.initialization`: torch's initialisers that leave a tensor alone once
loading marked it initialised (`_is_hf_initialized`). transformers 4.x has no such module; there the
loader marks whole modules instead and calls `_init_weights` only on the ones it did not load, so
torch's own initialisers are the right stand-in. Everything else the model imports exists in both.
"""

import torch

try:
    from transformers import initialization as init
except ImportError:  # transformers 4.x

    class _TorchInitialisers:
        """`transformers.initialization`'s functions used by `_init_weights`, on torch's initialisers."""

        trunc_normal_ = staticmethod(torch.nn.init.trunc_normal_)
        normal_ = staticmethod(torch.nn.init.normal_)
        zeros_ = staticmethod(torch.nn.init.zeros_)
        ones_ = staticmethod(torch.nn.init.ones_)

        @staticmethod
        @torch.no_grad()
        def copy_(tensor: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
            return tensor.copy_(other)

    init = _TorchInitialisers()

__all__ = ["init"]
