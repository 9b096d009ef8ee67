"""Failover without polling: profiles, the probe, lbpair's track files and the split-brain remedies, as rendered."""

import pytest

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.model import pillar
from saltext.lbpair.model import vrrp as vrrp_section
from saltext.lbpair.node import haproxy, haproxy_watch, keepalived_config, track


def model_for(lbpair, node="lb1"):
    return pillar.for_node(pillar.normalize(lbpair), node)


def keys_of(lines):
    return {line.strip(): key for line, key in lines}


def fast(seed_pillar):
    seed_pillar["vrrp"]["profile"] = "fast"
    seed_pillar["vrrp"].pop("advert_int", None)
    return seed_pillar


def test_the_default_profile_is_vrrpv2_with_one_second_adverts(seed_pillar):
    vrrp = model_for(seed_pillar)["vrrp"]
    assert (vrrp["profile"], vrrp["version"], vrrp["advert_int"], vrrp["realtime"]) == ("default", 2, 1, False)


def test_the_fast_profile_is_vrrpv3_with_tenth_second_adverts_under_sched_rr(seed_pillar):
    keys = keys_of(keepalived_config.render_lines(model_for(fast(seed_pillar))))
    assert keys["advert_int 0.1"] == "lbpair:vrrp:advert_int"
    assert keys["version 3"] == "lbpair:vrrp:version"
    assert keys[f"vrrp_rt_priority {vrrp_section.REALTIME_PRIORITY}"] == "lbpair:vrrp:realtime"


def test_a_key_set_in_the_pillar_wins_over_the_profile(seed_pillar):
    fast(seed_pillar)["vrrp"]["advert_int"] = 0.25
    assert model_for(seed_pillar)["vrrp"]["advert_int"] == 0.25


def test_a_whole_second_given_as_a_float_is_fine_with_vrrpv2(seed_pillar):
    seed_pillar["vrrp"]["advert_int"] = 2.0
    assert model_for(seed_pillar)["vrrp"]["advert_int"] == 2


def test_strict_mode_starts_as_backup_accepts_traffic_to_the_vips_and_drops_the_remedies(seed_pillar):
    seed_pillar["vrrp"].update(strict=True, version=3)
    for remedy in ("higher_prio_send_advert", "garp_lower_prio_repeat", "failback_delay"):
        seed_pillar["vrrp"].pop(remedy, None)  # the example sets them: strict mode refuses them
    text = keepalived_config.render_config(model_for(seed_pillar))
    assert "    vrrp_strict\n" in text and "    state BACKUP\n" in text and "    accept\n" in text
    assert "higher_prio_send_advert" not in text and "garp_lower_prio_repeat" not in text and "preempt_delay" not in text


def test_without_preempt_strict_mode_is_refused(seed_pillar):
    seed_pillar["vrrp"].update(strict=True, preempt=False, version=3)
    seed_pillar["vrrp"]["check"]["weight"] = 0
    with pytest.raises(InvalidValue) as error:
        pillar.normalize(seed_pillar)
    assert error.value.path == "lbpair:vrrp:preempt"


def test_every_track_file_of_lbpair_is_declared_before_the_instance_and_listed_in_it(seed_pillar):
    text = keepalived_config.render_config(model_for(seed_pillar))
    instance = text.index("vrrp_instance lbpair_51 {")
    for name in track.NAMES:
        block = f"track_file lbpair_{name} {{\n    file /var/lib/lbpair/track/{name}\n"
        assert 0 <= text.index(block) < instance  # keepalived -t crashes on a track file declared after its user
        assert f"        lbpair_{name}\n" in text[instance:]


def test_a_non_zero_haproxy_or_maintenance_file_means_fault_and_defer_drops_below_the_peer(seed_pillar):
    model = model_for(seed_pillar)
    assert track.weight(model, track.HAPROXY) == track.weight(model, track.MAINTENANCE) == 0
    assert track.weight(model, track.DEFER) == -2  # 101 - 2 < 100: below the peer


def test_an_operators_track_file_names_its_pillar_keys(seed_pillar):
    seed_pillar["vrrp"]["track_files"] = {"uplink": {"file": "/var/lib/lbpair/track/uplink", "weight": -10}}
    keys = keys_of(keepalived_config.render_lines(model_for(seed_pillar)))
    assert keys["file /var/lib/lbpair/track/uplink"] == "lbpair:vrrp:track_files:uplink:file"
    assert keys["weight -10"] == "lbpair:vrrp:track_files:uplink:weight"
    assert keys["uplink"] == "lbpair:vrrp:track_files:uplink"


def test_the_probe_is_a_fault_check_run_through_sh(seed_pillar):
    keys = keys_of(keepalived_config.render_lines(model_for(seed_pillar)))
    assert keys[f'script "/bin/sh {haproxy_watch.PROBE_SCRIPT}"'] == "lbpair:vrrp:probe:port"
    assert keys["lbpair_probe"] == "lbpair:vrrp:probe:enabled"
    text = keepalived_config.render_config(model_for(seed_pillar))
    assert "vrrp_script lbpair_probe {\n    script" in text and "    timeout 3\n    weight 0\n" in text


@pytest.mark.parametrize(("timeout", "attempts"), [(1, 2), (3, 10), (3600, 14398)])
def test_the_probe_asks_a_haproxy_that_is_not_there_again_within_keepalived_s_timeout(seed_pillar, timeout, attempts):
    seed_pillar["vrrp"]["probe"] = {"timeout": timeout}
    model = model_for(seed_pillar)
    assert haproxy_watch.probe_attempts(model) == attempts
    assert attempts * haproxy_watch.ASK_AGAIN_TIME <= timeout - haproxy_watch.PROBE_MAX_TIME  # keepalived never kills it
    script = haproxy_watch.probe_script(model)
    assert f"while [ $attempt -lt {attempts} ]" in script and "    7|52|56) sleep 0.2 ;;\n    *) exit 1 ;;" in script


def test_haproxy_answers_the_probe_itself_on_the_loopback(seed_pillar):
    keys = keys_of(haproxy.render_lines(model_for(seed_pillar)))
    assert keys["bind 127.0.0.1:8405"] == "lbpair:vrrp:probe:port"
    assert keys["frontend lbpair-probe"] == "lbpair:vrrp:probe:enabled"
    assert "http://127.0.0.1:8405/ && exit 0" in haproxy_watch.probe_script(model_for(seed_pillar))


def test_without_the_probe_neither_daemon_mentions_it(seed_pillar):
    seed_pillar["vrrp"]["probe"] = {"enabled": False}
    model = model_for(seed_pillar)
    assert "lbpair-probe" not in haproxy.render_config(model)
    assert "lbpair_probe" not in keepalived_config.render_config(model)


def test_split_brain_remedies_are_on_by_default_and_name_their_keys(seed_pillar):
    keys = keys_of(keepalived_config.render_lines(model_for(seed_pillar)))
    assert keys["higher_prio_send_advert"] == "lbpair:vrrp:higher_prio_send_advert"
    assert keys["garp_lower_prio_repeat 5"] == "lbpair:vrrp:garp_lower_prio_repeat"
    assert keys["garp_master_refresh 60"] == "lbpair:vrrp:garp_master_refresh"


def test_the_systemd_drop_in_marks_haproxy_down_only_through_the_check_of_the_unit():
    drop_in, script = haproxy_watch.drop_in(), haproxy_watch.track_script("haproxy")
    assert "OnSuccess=lbpair-haproxy-down.service" in drop_in and f"ExecStartPost=-{haproxy_watch.TRACK_SCRIPT} started" in drop_in
    assert "systemctl list-jobs --no-legend haproxy.service" in script and "inactive|failed) value=1" in script
    assert f"ExecStart={haproxy_watch.TRACK_SCRIPT} ended" in haproxy_watch.down_unit("haproxy")


def test_track_files_are_created_with_zero_and_never_overwritten(tmp_path):
    directory = str(tmp_path / "track")
    assert track.create_missing(directory, test=True) == [f"{directory}/{name}" for name in track.NAMES]
    track.write(track.MAINTENANCE, 1, directory)
    created = track.create_missing(directory)
    assert f"{directory}/{track.MAINTENANCE}" not in created and len(created) == len(track.NAMES) - 1
    assert track.read(track.MAINTENANCE, directory) == 1 and track.read(track.HAPROXY, directory) == 0
    assert track.create_missing(directory) == []


def test_a_track_file_name_is_one_word_in_the_directory():
    with pytest.raises(InvalidValue):
        track.path("../etc/passwd")
