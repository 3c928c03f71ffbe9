import pytest

from tinyemo import taxonomy as tx


def test_taxonomies_have_the_papers_sizes_and_no_duplicates():
    assert len(tx.MIKELS8) == 8 and len(set(tx.MIKELS8)) == 8
    assert len(tx.EKMAN6) == 6 and len(set(tx.EKMAN6)) == 6
    assert len(tx.UNBIASED6) == 6 and len(set(tx.UNBIASED6)) == 6
    assert tx.taxonomy("mikels8") is tx.MIKELS8
    assert len(tx.PARROTT25) == 25 and list(tx.PARROTT25) == sorted(set(tx.PARROTT25))
    assert tx.taxonomy("parrott25") is tx.PARROTT25
    assert {"cheerfulness", "irritability"} <= set(tx.PARROTT25)  # correct spellings, not WEBEmo's


def test_mapping_covers_mikels_and_lands_in_ekman():
    assert set(tx.MIKELS_TO_EKMAN) == set(tx.MIKELS8)
    assert set(tx.MIKELS_TO_EKMAN.values()) <= set(tx.EKMAN6)
    for name in ("anger", "disgust", "fear", "sadness"):
        assert tx.MIKELS_TO_EKMAN[name] == name
    assert {tx.to_ekman(e) for e in ("amusement", "contentment", "excitement")} == {"joy"}
    assert tx.to_ekman("awe") == "surprise"


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(tx.UnknownTaxonomyError, match="valid taxonomies: mikels8, ekman6, unbiased6"):
        tx.taxonomy("Mikels8")
    with pytest.raises(tx.UnknownTaxonomyError, match="unknown emotion 'joy'; valid: amusement"):
        tx.to_ekman("joy")


def test_label_positions_map_names_and_refuse_unknown_labels():
    from tinyemo.taxonomy import EKMAN6, label_positions

    assert label_positions(["fear", "anger", "fear"], EKMAN6) == [2, 0, 2]
    with pytest.raises(ValueError, match=r"labels \['awe'\] are not among the label set \(anger, disgust"):
        label_positions(["anger", "awe"], EKMAN6)
