import pytest
import torch
from PIL import Image
from skimage import data

from tinyemo.models import registry
from tinyemo.models.folders import ModelNotPreparedError
from tinyemo.models.vision import efficientnet, encode_images, load_vision_tower, prepare_vision_tower
from tinyemo.models.vision.base import to_pixels

CAT_CLASSES = range(281, 286)  # tabby, tiger, Persian, Siamese, Egyptian cat


EFFICIENTNETS = ("efficientnet-lite0", "efficientnet-lite0-448", "efficientnet-lite2")


@pytest.fixture(scope="module")
def efficientnets(tmp_path_factory):
    """Every EfficientNet-Lite tower of the registry, prepared into one scratch folder."""
    base = tmp_path_factory.mktemp("base-models")
    for name in EFFICIENTNETS:
        prepare_vision_tower(name, base / name)
    return {name: load_vision_tower(name, base_dir=base) for name in EFFICIENTNETS}


@pytest.fixture(scope="module")
def effnet(efficientnets):
    return efficientnets["efficientnet-lite0"]


@pytest.fixture(scope="module")
def chelsea():
    return Image.fromarray(data.chelsea())


def cat_probability(tower, pixels):
    with torch.inference_mode():
        probs = tower.imagenet_probabilities(pixels)[0]
    return probs.argmax().item(), probs[list(CAT_CLASSES)].sum().item()


@pytest.mark.slow
@pytest.mark.parametrize("name, least_cat_mass", [
    ("efficientnet-lite0", 0.8),
    ("efficientnet-lite0-448", 0.4),  # twice the side it was trained at: a cat, less surely
    ("efficientnet-lite2", 0.8),
])
def test_efficientnet_sees_a_cat(efficientnets, name, least_cat_mass, chelsea):
    tower = efficientnets[name]
    top1, cat_mass = cat_probability(tower, tower.preprocess([chelsea]))
    assert top1 in CAT_CLASSES
    assert cat_mass > least_cat_mass


@pytest.mark.slow
@pytest.mark.parametrize("name, side, width", [("efficientnet-lite0-448", 14, 320),
                                               ("efficientnet-lite2", 9, 352)])
def test_efficientnet_grid_follows_the_input_size(efficientnets, name, side, width, chelsea):
    pooled, patches = encode_images(efficientnets[name], [chelsea])  # last block: stride 32
    assert pooled.shape == (1, 1280) and patches.shape == (1, side * side, width)


@pytest.mark.parametrize("architecture", sorted(efficientnet.CHECKPOINT_PACKAGES))
def test_every_checkpoint_tensor_is_copied_onto_timm(architecture):
    source = torch.load(efficientnet.package_checkpoint(architecture), weights_only=True)
    converted = efficientnet.converted_state_dict(architecture)
    target = efficientnet.timm_model(architecture).state_dict()
    assert list(converted) == list(target) and len(converted) == len(source)
    for (key, tensor), original in zip(converted.items(), source.values()):
        assert tensor.shape == target[key].shape
        assert torch.equal(tensor, original.to(tensor.dtype))


@pytest.mark.slow
def test_efficientnet_normalisation_is_the_better_one(effnet, chelsea):
    imagenet = to_pixels([chelsea], 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    _, chosen = cat_probability(effnet, effnet.preprocess([chelsea]))
    _, other = cat_probability(effnet, imagenet)
    assert chosen > other


@pytest.mark.slow
def test_efficientnet_outputs_and_batch_independence(effnet, chelsea):
    images = [chelsea, chelsea.rotate(90), Image.new("RGB", (224, 224), "teal")]
    pooled, patches = encode_images(effnet, images, batch_size=2)
    assert pooled.shape == (3, 1280) and patches.shape == (3, 49, 320)
    alone, _ = encode_images(effnet, images[2:], batch_size=1)
    assert torch.allclose(alone[0], pooled[2], atol=1e-4)
    assert not torch.allclose(pooled[0], pooled[2], atol=1e-2)


def test_checkpoint_with_wrong_shapes_is_refused(tmp_path, monkeypatch):
    source = torch.load(efficientnet.package_checkpoint("tf_efficientnet_lite0"), weights_only=True)
    first = next(iter(source))
    source[first] = torch.zeros(3, 3)
    broken = tmp_path / "broken.pth"
    torch.save(source, broken)
    monkeypatch.setattr(efficientnet, "package_checkpoint", lambda architecture: broken)
    with pytest.raises(RuntimeError, match=r"cannot map _conv_stem.weight \(3, 3\) onto timm's conv_stem.weight"):
        efficientnet.converted_state_dict("tf_efficientnet_lite0")


def test_unprepared_efficientnet_says_to_run_assets(tmp_path):
    with pytest.raises(ModelNotPreparedError, match="dvc repro assets"):
        load_vision_tower("efficientnet-lite0", base_dir=tmp_path)


def test_tiny_cnn_is_deterministic_frozen_and_small(tmp_path):
    images = [Image.new("RGB", (80, 64), c) for c in ("red", "navy")]
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        image.save(paths[-1])
    first = load_vision_tower("tiny-random-cnn")
    pooled, patches = encode_images(first, images, batch_size=1)
    again, _ = encode_images(load_vision_tower("tiny-random-cnn"), paths, batch_size=2)
    assert pooled.shape == (2, 32) and patches.shape == (2, 16, 16)
    assert torch.allclose(pooled, again, atol=1e-6)
    assert not torch.allclose(pooled[0], pooled[1])
    first.train()
    assert not first.training
    assert not any(p.requires_grad for p in first.parameters())
    assert sum(p.numel() for p in first.parameters()) < 10_000


def test_tower_widths_match_the_registry():
    tower = load_vision_tower("tiny-random-cnn")
    spec = registry.vision_tower_spec("tiny-random-cnn")
    pooled, patches = tower(tower.preprocess([Image.new("RGB", (64, 64))]))
    assert (pooled.shape[1], patches.shape[2]) == (spec.pooled_dim, spec.patch_dim)


def test_unknown_tower_lists_valid_names():
    with pytest.raises(registry.UnknownModelError, match="valid names: clip-vit-b-16, clip-vit-l-14"):
        load_vision_tower("resnet50")


def test_encode_images_refuses_an_empty_list():
    with pytest.raises(ValueError, match="at least one image"):
        encode_images(load_vision_tower("tiny-random-cnn"), [], batch_size=4)


@pytest.mark.slow
def test_clip_tower_uses_quick_gelu_and_the_penultimate_block(monkeypatch):
    import open_clip
    from open_clip.transformer import QuickGELU

    build, seen = open_clip.create_model_and_transforms, {}

    def without_download(arch, pretrained=None, **kwargs):
        seen.update(arch=arch, pretrained=pretrained, **kwargs)
        return build(arch, pretrained=None, **kwargs)  # same architecture, random weights

    monkeypatch.setattr(open_clip, "create_model_and_transforms", without_download)
    tower = load_vision_tower("clip-vit-b-16")
    assert seen == {"arch": "ViT-B-16", "pretrained": "openai", "force_quick_gelu": True}
    assert isinstance(tower.visual.transformer.resblocks[0].mlp.gelu, QuickGELU)

    captured = {}
    tower.visual.transformer.resblocks[-2].register_forward_hook(
        lambda module, args, output: captured.setdefault("penultimate", output)
    )
    pixels = tower.preprocess([Image.new("RGB", (300, 200), "orange")])
    with torch.inference_mode():
        pooled, patches = tower(pixels)
        assert torch.allclose(pooled, tower.visual(pixels), atol=1e-5)
    assert pooled.shape == (1, 512) and patches.shape == (1, 196, 768)
    assert torch.allclose(patches, captured["penultimate"][:, 1:], atol=1e-5)
