"""Issue #11: every specs/torchvision/<builder>.yaml, compiled at the input size of torchvision's first
published weights for the builder (240 for EfficientNet-B1, 518 for ViT-H/14's SWAG weights, 256 for
Swin-V2), has the weights' ``meta`` numbers: ``num_params`` exactly and ``_ops`` (GMACs) to its 3
decimals. Static analysis only: the weights are never downloaded, their metadata ships with
torchvision."""

import pytest
from torchvision.models import get_model_weights

from archspec.analysis import compile_spec

from .conftest import ROOT, torchvision_specs


# torchvision's googlenet() with weights builds the network without its auxiliary classifiers (the
# published weights have none); inception_v3's weights keep its AuxLogits
WITHOUT_AUX = {"googlenet"}


def _first_weights(name: str):
    return list(get_model_weights(name))[0]


@pytest.mark.parametrize("spec", torchvision_specs(), ids=lambda p: p.stem)
def test_numbers_equal_the_first_weights_meta(spec):
    w = _first_weights(spec.stem)
    side = w.transforms.keywords["crop_size"]
    ref = str(spec.relative_to(ROOT))
    [(net, _, st)] = compile_spec(ref, (3, side, side))
    params = st.params if spec.stem in WITHOUT_AUX else st.params_with_aux
    assert params == w.meta["num_params"]
    assert round(st.macs / 1e9, 3) == pytest.approx(w.meta["_ops"], abs=1e-9), (st.macs, w.meta["_ops"])
