"""Encoding an EmoScenes split straight from its image folder, at any input size."""
import pytest

from tinyemo.mmllm.tower_probe import at_input_size, encode_split
from tinyemo.models.vision import load_vision_tower
from tinyemo.scenes import dataset


@pytest.fixture(scope="module")
def emoscenes(tmp_path_factory):
    root = tmp_path_factory.mktemp("emo") / "emoscenes"
    dataset.synthesize(n_train=6, n_val=2, n_test=3, image_size=48, label_noise=0.0,
                       planted_biases=[], seed=3, root=root)
    return root


def test_a_split_is_encoded_in_id_order_up_to_the_limit(emoscenes):
    tower = load_vision_tower("tiny-random-cnn")
    patches, records, seconds = encode_split(tower, "train", 4, emoscenes, batch_size=3)
    assert [r.id for r in records] == [f"{i:06d}" for i in range(4)]
    assert patches.shape == (4, 16, 16) and seconds > 0  # 64 px: a 4x4 grid
    _, test_records, _ = encode_split(tower, "test", None, emoscenes)
    assert len(test_records) == 3 and {r.split for r in test_records} == {"test"}


def test_a_larger_input_gives_a_finer_grid_with_the_same_weights(emoscenes):
    tower = load_vision_tower("tiny-random-cnn")
    weights = [p.clone() for p in tower.parameters()]
    larger = at_input_size(tower, 128)
    patches, _, _ = encode_split(larger, "val", None, emoscenes)
    assert larger.spec.image_size == 128 and larger.spec.name == "tiny-random-cnn"
    assert patches.shape == (2, 64, 16)  # 128 px: an 8x8 grid
    assert all((p == w).all() for p, w in zip(larger.parameters(), weights))
