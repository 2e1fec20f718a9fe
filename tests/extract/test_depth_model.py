import numpy as np
import pytest
from extract_fixtures import translating_clip

from robo4d.extract.depth_model import DepthAnythingDepth, DepthModelConfig
from robo4d.extract.errors import ExtractError


def _save_tiny_model(path, kind: str) -> None:
    """A randomly initialised Depth Anything with a 4-layer, 32-wide Dinov2 backbone, saved like a real one."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(
        image_size=56, patch_size=14, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=64, out_indices=[1, 2, 3, 4], reshape_hidden_states=False,
    )  # fmt: skip
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16, head_hidden_size=8, depth_estimation_type=kind, max_depth=10,
    )  # fmt: skip
    model = DepthAnythingForDepthEstimation(config)
    model.head.conv3.bias.data.fill_(1.0)  # random weights with a ReLU head: make outputs mostly positive
    model.save_pretrained(path)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("depth_anything")
    for kind in ("relative", "metric"):
        _save_tiny_model(root / kind, kind)
    return root


def test_relative_model_loads_locally_and_is_scaled_to_the_reference_median(model_dirs):
    frames = translating_clip(3, 40, (1.0, 0.0))
    source = DepthAnythingDepth(DepthModelConfig(model_dir=model_dirs / "relative", input_size=28))
    assert source.kind == "relative"
    raw = source.predict(frames)
    assert raw.shape == (3, 40, 40) and raw.dtype == np.float32
    sensor = np.full((3, 40, 40), 1.5, np.float32)
    depth = source.depth(frames, sensor)
    assert depth.shape == (3, 40, 40)
    for t in range(3):
        assert np.isclose(np.nanmedian(depth[t]), 1.5, rtol=1e-3)  # per-frame median matches the reference
    np.testing.assert_array_equal(np.isnan(depth), ~(raw > 0))  # zero disparity is never given a depth
    with pytest.raises(ExtractError, match="relative-depth model.*--depth-median"):
        source.depth(frames, None)
    by_user = DepthAnythingDepth(DepthModelConfig(model_dir=model_dirs / "relative", input_size=28, median_depth=2.0))
    assert np.isclose(np.nanmedian(by_user.depth(frames, None)[0]), 2.0, rtol=1e-3)


def test_metric_model_is_used_as_metres_or_rescaled_once_per_clip(model_dirs):
    frames = translating_clip(2, 40, (1.0, 0.0))
    source = DepthAnythingDepth(DepthModelConfig(model_dir=model_dirs / "metric", input_size=28))
    raw = source.predict(frames)
    np.testing.assert_allclose(source.depth(frames, None), np.where(raw > 0, raw, np.nan))
    scaled = source.depth(frames, np.full((2, 40, 40), 3.0, np.float32))
    assert np.isclose(np.nanmedian(scaled[0]), 3.0, rtol=1e-3)
    np.testing.assert_allclose(scaled[1] / raw[1], scaled[0, 0, 0] / raw[0, 0, 0], rtol=1e-4)  # one factor


def test_missing_weights_give_a_clear_error(tmp_path):
    with pytest.raises(ExtractError, match="--depth model needs local weights.*--depth-model-dir"):
        DepthAnythingDepth(DepthModelConfig())
    with pytest.raises(ExtractError, match="does not exist"):
        DepthAnythingDepth(DepthModelConfig(model_dir=tmp_path / "nope"))
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ExtractError, match="lacks model.safetensors"):
        DepthAnythingDepth(DepthModelConfig(model_dir=tmp_path))
