"""models.config parsing (tensorflow-serving-api's ModelServerConfig) and version policies."""
from __future__ import annotations

import pytest

from tfsonify.serving.config import VersionPolicy, parse_model_config, read_model_config, specs_from_folder


def test_policies_select_like_tf_serving():
    versions = [3, 1, 7, 5]
    assert VersionPolicy().select(versions) == [7]
    assert VersionPolicy("latest", num_versions=2).select(versions) == [5, 7]
    assert VersionPolicy("all").select(versions) == [1, 3, 5, 7]
    assert VersionPolicy("specific", versions=(3, 9)).select(versions) == [3]
    with pytest.raises(ValueError, match="latest, all or specific"):
        VersionPolicy("newest")


def test_parse_two_models_policies_and_labels(tmp_path):
    text = """
    model_config_list {
      config { name: "cnn12" base_path: "/models/cnn12" model_platform: "tensorflow"
               model_version_policy { latest { num_versions: 2 } } }
      config { name: "small" base_path: "small" model_platform: "tensorflow"
               model_version_policy { specific { versions: 1 versions: 4 } }
               version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 4 } }
      config { name: "every" base_path: "/x" model_version_policy { all {} } }
      config { name: "plain" base_path: "/y" }
    }"""
    specs = {spec.name: spec for spec in parse_model_config(text, relative_to=tmp_path)}
    assert specs["cnn12"].policy == VersionPolicy("latest", num_versions=2)
    assert str(specs["cnn12"].base_path) == "/models/cnn12"
    assert specs["small"].base_path == tmp_path / "small"
    assert specs["small"].policy == VersionPolicy("specific", versions=(1, 4))
    assert specs["small"].labels == {"stable": 1, "canary": 4}
    assert specs["every"].policy.kind == "all"
    assert specs["plain"].policy == VersionPolicy()  # unset: latest 1, as TF Serving


def test_the_exporters_models_config_parses(tmp_path):
    from tfsonify.export.savedmodel import write_model_config

    path = write_model_config(tmp_path / "models.config", {"a": "/models/a", "b": "rel/b"}, version_policy="all")
    specs = read_model_config(path)
    assert [s.name for s in specs] == ["a", "b"] and specs[1].base_path == tmp_path.resolve() / "rel" / "b"
    assert all(s.policy.kind == "all" for s in specs)


@pytest.mark.parametrize("text, message", [
    ("model_config_list { config { name: 'a' } }", "no base_path"),
    ("model_config_list { config { base_path: '/a' } }", "needs a name"),
    ("model_config_list { config { name: 'a' base_path: '/a' } config { name: 'a' base_path: '/b' } }", "more than once"),
    ("model_config_list { config { name: 'a' base_path: '/a' model_platform: 'pytorch' } }", "model_platform"),
    ("model_config_list { config { name: 'a' base_path: '/a' version_labels { key: '3' value: 1 } } }", "non-numeric"),
    ("model_config_list { config { name: 'a' base_path: '/a' model_version_policy { specific {} } } }", "at least one"),
    ("model_config_list { config { name: 'a' bogus: 1 } }", "not a valid ModelServerConfig"),
    ("", "model_config_list"),
])
def test_bad_configs_are_refused(text, message):
    with pytest.raises(ValueError, match=message):
        parse_model_config(text)


def test_specs_from_folder(tmp_path):
    (tmp_path / "m" / "2").mkdir(parents=True)
    (tmp_path / "m" / "2" / "saved_model.pb").write_bytes(b"")
    (tmp_path / "empty").mkdir()
    assert [s.name for s in specs_from_folder(tmp_path)] == ["m"]
    assert [s.name for s in specs_from_folder(tmp_path / "m")] == ["m"]
    with pytest.raises(ValueError, match="no exported models"):
        specs_from_folder(tmp_path / "empty")
    with pytest.raises(ValueError, match="does not exist"):
        read_model_config(tmp_path / "missing.config")
