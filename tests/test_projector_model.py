"""MetricProjector: the paper's block, shapes, unit outputs, clear width errors."""
import pytest
import torch
from torch import nn

from tinyemo.projector.model import MetricProjector


def test_paper_block_layers_and_unit_outputs():
    model = MetricProjector(768, 576)
    kinds = [type(layer) for layer in model.mlp]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.GELU, nn.Dropout, nn.Linear]
    assert model.mlp[0].out_features == 576 and model.mlp[3].p == 0.2
    out = model.eval()(torch.randn(5, 768) * 19)
    assert out.shape == (5, 576)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(5))


@pytest.mark.parametrize("depth,width,linears", [(1, None, 1), (2, 64, 2), (3, 32, 3)])
def test_depth_and_width(depth, width, linears):
    model = MetricProjector(16, 8, width=width, depth=depth)
    layers = [layer for layer in model.mlp if isinstance(layer, nn.Linear)]
    assert len(layers) == linears
    assert layers[-1].out_features == 8
    if depth > 1:
        assert layers[0].out_features == width
    assert model.eval()(torch.randn(3, 16)).shape == (3, 8)
    assert MetricProjector(**model.config()).config() == model.config()


def test_normalize_input_makes_scale_irrelevant():
    model = MetricProjector(16, 8, normalize_input=True).eval()
    x = torch.randn(4, 16)
    torch.testing.assert_close(model(x), model(x * 20))


def test_wrong_feature_width_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\[N, 16\].*different vision tower"):
        MetricProjector(16, 8)(torch.randn(2, 12))
    with pytest.raises(ValueError, match="depth"):
        MetricProjector(16, 8, depth=0)
