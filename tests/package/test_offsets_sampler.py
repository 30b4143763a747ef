"""The BaRatin form's own sampler settings (config ``sampler.offsets``): they apply to its programs only, win
under the retry's settings, and change the fit key of the stations fitted in that form only."""
from dataclasses import replace

import yaml

from ratingflow.candidates import Candidate, ModelSettings, Structure
from ratingflow.fit import station_key
from ratingflow.sampler import BatchedNUTS, SamplerSettings

CONFIG = {"num_chains": 4, "num_warmup": 500, "num_samples": 1000, "target_accept": 0.95, "max_tree_depth": 10,
          "dense_mass": True, "chains_per_step": -1, "retry": {"num_warmup": 1000, "num_samples": 2000},
          "offsets": {"target_accept": 0.99, "num_warmup": 800}}


def test_only_a_program_of_the_baratin_form_runs_with_the_forms_settings():
    settings = SamplerSettings.from_config(CONFIG)
    one_h0 = BatchedNUTS(Structure(max_segments=2), settings).settings
    own = BatchedNUTS(Structure(max_segments=2, segment_offsets=True), settings).settings
    assert (one_h0.target_accept, one_h0.num_warmup) == (0.95, 500)
    assert (own.target_accept, own.num_warmup, own.num_samples) == (0.99, 800, 1000)
    # a one-h0 program is the same program as without the option: its cached trace and compilation are found
    assert repr(one_h0) == repr(SamplerSettings.from_config({k: v for k, v in CONFIG.items() if k != "offsets"}))
    # the retry's settings win over the form's; what the retry does not set, the form still sets
    retry = settings.replaced(**CONFIG["retry"], target_accept=0.999)
    own_retry = retry.for_structure(Structure(max_segments=2, segment_offsets=True))
    assert (own_retry.num_warmup, own_retry.num_samples, own_retry.target_accept) == (1000, 2000, 0.999)
    partial = settings.replaced(num_samples=2000).for_structure(Structure(max_segments=2, segment_offsets=True))
    assert (partial.num_warmup, partial.target_accept, partial.num_samples) == (800, 0.99, 2000)


def test_the_forms_settings_refit_only_the_stations_fitted_in_that_form():
    with_offsets = SamplerSettings.from_config(CONFIG)
    without = replace(with_offsets, offsets=())
    assert with_offsets.key() == without.key()

    def key(settings, extra, models=ModelSettings()):
        return station_key([], {"sampler": settings.key()}, extra, models, 1, settings.offsets)

    plain, described = {}, {"control_types": ["riffle", "channel"]}
    assert key(with_offsets, plain) == key(without, plain)
    assert key(with_offsets, described) != key(without, described)
    every = ModelSettings(segment_offsets=True)
    assert key(with_offsets, plain, every) != key(without, plain, every)
    # the default config's form settings are valid and set
    from pathlib import Path

    config = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "config.yaml").read_text())
    assert SamplerSettings.from_config(config["sampler"]).offsets


def test_the_retry_skips_a_fit_only_where_the_forms_settings_are_the_retrys():
    from types import SimpleNamespace

    from ratingflow.fit import same_settings

    seg2 = Candidate("seg2")
    own, one_h0 = (SimpleNamespace(candidate=seg2, posterior={"offset_rel": 0}),
                   SimpleNamespace(candidate=seg2, posterior={}))
    retry = {"num_warmup": 1000, "num_samples": 2000, "target_accept": 0.99}
    same = SamplerSettings.from_config({**CONFIG, "offsets": retry})
    assert same_settings(same, same.replaced(**retry))(own)
    assert not same_settings(same, same.replaced(**retry))(one_h0)
    shorter = SamplerSettings.from_config(CONFIG)  # the form's 800 warm-up: the retry's 1000 are longer
    assert not same_settings(shorter, shorter.replaced(**retry))(own)


def test_the_schema_checks_the_forms_settings_as_the_retrys():
    from pathlib import Path

    import jsonschema

    root = Path(__file__).resolve().parents[2]
    schema = yaml.safe_load((root / "workflow" / "schemas" / "config.schema.yaml").read_text())
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    jsonschema.validate(config, schema)
    for part in ("offsets", "retry"):
        for wrong in ({"target_accept": 1.5}, {"num_draws": 2000}):
            bad = {**config, "sampler": {**config["sampler"], part: wrong}}
            try:
                jsonschema.validate(bad, schema)
            except jsonschema.ValidationError:
                continue
            raise AssertionError(f"sampler.{part} = {wrong} passed the schema")


def test_a_capped_tree_depth_applies_to_the_timeless_one_h0_programs_only():
    """``max_tree_depth_by_form``: the plain power law and the one-h0 segmented program get their depth; the BaRatin
    form, rating periods, the generalized power law and the retry keep ``max_tree_depth``; an uncapped program
    is the same program (settings, cache key) as without the option."""
    from types import SimpleNamespace

    from ratingflow.fit import same_settings

    config = {**CONFIG, "max_tree_depth_by_form": {"power_law": 3, "segmented": 4}}
    settings = SamplerSettings.from_config(config)
    depth = {name: BatchedNUTS(structure, settings).settings.max_tree_depth for name, structure in {
        "plain": Structure(), "seg3": Structure(max_segments=3), "baratin": Structure(max_segments=2, segment_offsets=True),
        "periods": Structure(max_periods=4), "gplm": Structure(gplm_terms=8)}.items()}
    assert depth == {"plain": 3, "seg3": 4, "baratin": 10, "periods": 10, "gplm": 10}
    uncapped = SamplerSettings.from_config(CONFIG)
    for structure in (Structure(max_periods=4), Structure(max_segments=2, segment_offsets=True)):
        assert repr(settings.for_structure(structure)) == repr(uncapped.for_structure(structure))
    assert repr(settings.for_structure(Structure())) != repr(uncapped.for_structure(Structure()))
    # the caps change the fit key (the draws change); the retry's trees are not capped
    assert settings.key() != uncapped.key()
    retry = settings.replaced(**CONFIG["retry"])
    assert retry.for_structure(Structure()).max_tree_depth == 10
    assert not same_settings(settings, retry)(SimpleNamespace(candidate=Candidate("seg1"), posterior={}))
    # the default config caps both one-h0 forms
    from pathlib import Path

    default = yaml.safe_load((Path(__file__).resolve().parents[2] / "config" / "config.yaml").read_text())["sampler"]
    caps = dict(SamplerSettings.from_config(default).max_tree_depth_by_form)
    assert set(caps) == {"power_law", "segmented"} and max(caps.values()) < default["max_tree_depth"]
