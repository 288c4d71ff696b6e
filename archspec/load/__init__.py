"""Loading: spec files -> networks ready to lower."""

from .loader import Network, expand_refs, load_networks, split_ref

__all__ = ["Network", "expand_refs", "load_networks", "split_ref"]
