"""The fleet: pairs learned from the pillar the master compiles for each node, and what it refuses."""

import concurrent.futures
import copy
import threading

import pytest
import salt.cache
import salt.config

from saltext.lbpair.core.errors import InvalidValue
from saltext.lbpair.master import fleet
from saltext.lbpair.model import pillar


def second_pair(seed_pillar, name="api", nodes=("lb3", "lb4")):
    """Another pair on its own addresses and VIPs, named ``name`` (None: no name, the default one)."""
    other = copy.deepcopy(seed_pillar)
    other["nodes"] = {nodes[0]: {"address": "192.0.2.13", "priority": 101}, nodes[1]: {"address": "192.0.2.14", "priority": 100}}
    for index, service in enumerate(other["services"].values()):
        service["vip"] = f"203.0.113.{110 + index}"
    if name is not None:
        other["pair"] = name
    return other


def test_todays_pillar_names_its_pair_after_its_nodes(seed_pillar):
    pairs, problems = fleet.gather({"lb1": seed_pillar, "lb2": seed_pillar})
    assert problems == {}
    assert list(pairs) == ["lb1+lb2"]
    pair = pairs["lb1+lb2"]
    assert pair.nodes == {"lb1": {"address": "192.0.2.11", "address6": None}, "lb2": {"address": "192.0.2.12", "address6": None}}
    assert pair.instances == {"lbpair_51"}
    assert "lb1" in pair and "lb3" not in pair


def test_a_named_pair_keeps_its_name(seed_pillar):
    seed_pillar["pair"] = "web"
    assert pillar.normalize(seed_pillar)["pair"] == "web"
    pairs, _ = fleet.gather({"lb1": seed_pillar, "lb2": seed_pillar})
    assert list(pairs) == ["web"]


def test_two_pairs_on_one_master(seed_pillar):
    api = second_pair(seed_pillar)
    pairs, problems = fleet.gather({"lb1": seed_pillar, "lb2": seed_pillar, "lb3": api, "lb4": api})
    assert problems == {}
    assert sorted(pairs) == ["api", "lb1+lb2"]
    assert pairs["api"].nodes["lb4"]["address"] == "192.0.2.14"


def test_a_minion_without_an_lbpair_pillar_is_no_node_and_no_problem(seed_pillar):
    pairs, problems = fleet.gather({"lb1": seed_pillar, "lb2": seed_pillar, "web3": None})
    assert list(pairs) == ["lb1+lb2"] and problems == {}


def test_a_pillar_that_leaves_its_own_minion_out_is_a_problem(seed_pillar):
    with pytest.raises(InvalidValue, match="'lb9' is not among the nodes of its own pillar") as caught:
        fleet.pair_of("lb9", seed_pillar)
    assert caught.value.path == "lbpair:nodes"
    pairs, problems = fleet.gather({"lb1": seed_pillar, "lb2": seed_pillar, "lb9": seed_pillar})
    assert list(pairs) == ["lb1+lb2"]
    assert "lb9" in problems


def test_an_invalid_pillar_is_a_problem_naming_its_key(seed_pillar):
    broken = copy.deepcopy(seed_pillar)
    broken["nodes"]["lb2"]["priority"] = 999
    pairs, problems = fleet.gather({"lb1": seed_pillar, "lb2": broken})
    assert pairs == {}
    assert "lbpair:nodes:lb2:priority" in problems["lb2"]
    assert "has no valid lbpair pillar of its own" in problems["lb1+lb2"]


def test_a_pillar_that_claims_someone_elses_pair_makes_an_outsider(seed_pillar):
    """lb3's pillar puts lb3 into pair web beside lb1, whose own pillar says web is lb1 and lb2: web stays lb1 and lb2."""
    seed_pillar["pair"] = "web"
    intruder = second_pair(seed_pillar, name="web", nodes=("lb1", "lb3"))
    intruder["nodes"]["lb1"]["address"] = "192.0.2.11"
    pairs, problems = fleet.gather({"lb1": seed_pillar, "lb2": seed_pillar, "lb3": intruder})
    assert list(pairs) == ["web"] and sorted(pairs["web"].nodes) == ["lb1", "lb2"]
    assert list(problems) == ["lb3"] and "an outsider: its pillar puts it in pair web, whose nodes (lb1, lb2)" in problems["lb3"]
    pillars = {"lb1": seed_pillar, "lb2": seed_pillar, "lb3": intruder}
    directory = fleet.Directory(claim_of=lambda minion: fleet.claim_of(minion, pillars.get(minion)))
    pair, why = directory.find("lb3")
    assert pair is None and "an outsider" in why
    assert directory.find("lb1")[0] == pairs["web"]


def test_two_pairs_of_the_same_name_are_a_problem(seed_pillar):
    seed_pillar["pair"] = "web"
    pairs, problems = fleet.gather({"lb1": seed_pillar, "lb2": seed_pillar, "lb3": second_pair(seed_pillar, "web"),
                                    "lb4": second_pair(seed_pillar, "web")})  # fmt: skip
    assert pairs == {} and problems == {"web": "2 different pairs are named web"}


def test_the_directory_finds_a_nodes_pair_from_its_own_and_its_peers_pillars_only(seed_pillar):
    api = second_pair(seed_pillar)
    pillars = {"lb1": seed_pillar, "lb2": seed_pillar, "lb3": api, "lb4": api, "web9": None}
    asked = []
    claim_of = lambda minion: asked.append(minion) or fleet.claim_of(minion, pillars.get(minion))  # noqa: E731
    directory = fleet.Directory(claim_of=claim_of, minions=lambda: list(pillars))
    assert directory.find("lb3")[0].name == "api" and sorted(asked) == ["lb3", "lb4"]
    assert directory.find("lb4")[0].name == "api" and sorted(asked) == ["lb3", "lb4"]  # each pillar read once
    assert directory.find("web9") == (None, "'web9' is not a node of any pair (it has no lbpair pillar)")
    assert sorted(directory.fleet()[0]) == ["api", "lb1+lb2"] and directory.named("api").nodes["lb3"]["address"] == "192.0.2.13"
    assert directory.named("nope") is None


def test_the_configured_pair_needs_no_pillar():
    directory = fleet.Directory(("lb1+lb2", {"lb1": {"address": "192.0.2.11"}, "lb2": {"address": "192.0.2.12"}}))
    pair, _ = directory.find("lb2")
    assert pair.name == "lb1+lb2" and pair.nodes["lb2"] == {"address": "192.0.2.12", "address6": None}
    assert directory.find("lb3") == (None, "'lb3' is not a node of the pair")
    assert list(directory.fleet()[0]) == ["lb1+lb2"]


def test_a_node_listed_by_another_pair_whose_own_pillar_says_otherwise(seed_pillar):
    """lb3's pillar lists lb1 as its peer; lb1's own pillar puts it in pair lb1+lb2."""
    claim = second_pair(seed_pillar, name="api", nodes=("lb1", "lb3"))
    pairs, problems = fleet.gather({"lb1": seed_pillar, "lb2": seed_pillar, "lb3": claim})
    assert list(pairs) == ["lb1+lb2"]
    assert "its own pillar puts it in pair lb1+lb2" in problems["api"]


def test_a_listed_node_without_a_pillar_leaves_the_pair_out(seed_pillar):
    pairs, problems = fleet.gather({"lb1": seed_pillar, "lb2": None})
    assert pairs == {}
    assert "lb2 is listed by lb1's pillar but has no valid lbpair pillar of its own" in problems["lb1+lb2"]


def test_nodes_that_disagree_on_an_address_leave_the_pair_out(seed_pillar):
    moved = copy.deepcopy(seed_pillar)
    moved["nodes"]["lb2"]["address"] = "192.0.2.22"
    pairs, problems = fleet.gather({"lb1": seed_pillar, "lb2": moved})
    assert pairs == {}
    assert "the pillars of lb1 and lb2 describe the pair differently" in problems["lb1+lb2"]


def test_a_tag_naming_no_possible_node_is_looked_up_nowhere(seed_pillar):
    asked = []
    directory = fleet.Directory(claim_of=lambda minion: asked.append(minion))
    for forged in ("../../etc", "lb1 lb2", "", "x" * 100, "lb1\n"):
        assert directory.find(forged)[0] is None
    assert asked == []


@pytest.fixture
def salt_cache(tmp_path):
    return salt.cache.factory({**salt.config.master_config(None), "cachedir": str(tmp_path)})


def test_claims_are_compiled_once_kept_in_salts_cache_and_forgotten_on_demand(seed_pillar, salt_cache):
    compiled = []
    pillars = {"lb1": seed_pillar, "lb2": seed_pillar, "web3": None}
    compile_pillar = lambda minion: compiled.append(minion) or pillars[minion]  # noqa: E731
    claims = fleet.CachedClaims(salt_cache, compile_pillar, known=lambda minion: minion in pillars)
    assert claims("lb1").name == "lb1+lb2" and claims("web3") is None and claims("lb9") is None
    again = fleet.CachedClaims(salt_cache, compile_pillar, known=lambda minion: minion in pillars)  # the next reaction
    assert again("lb1") == claims("lb1") and again("web3") is None
    # web3 has no lbpair pillar: asked again (a busy master's compile may fail), then kept a few seconds;
    # lb9 is unknown to the master: never compiled
    assert compiled == ["lb1"] + ["web3"] * fleet.COMPILE_TRIES
    seed_pillar["pair"] = "web"
    again.forget("lb1")
    assert again("lb1").name == "web" and compiled == ["lb1"] + ["web3"] * fleet.COMPILE_TRIES + ["lb1"]


def test_an_invalid_pillar_is_kept_as_its_problem(seed_pillar, salt_cache):
    broken = copy.deepcopy(seed_pillar)
    broken["nodes"]["lb2"]["priority"] = 999
    claims = fleet.CachedClaims(salt_cache, lambda minion: broken, known=lambda minion: True)
    assert "lbpair:nodes:lb2:priority" in claims("lb2")
    assert "lbpair:nodes:lb2:priority" in fleet.CachedClaims(salt_cache, None, known=None)("lb2")  # from the cache


def test_pillars_are_compiled_one_at_a_time_and_once_by_threads_at_once(seed_pillar, salt_cache):
    """Salt's compiles in the reactor's threads at once mixed up their minions (bench/storm): one at a time."""
    inside, most, compiled = [0], [0], []

    def compile_pillar(minion):
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        compiled.append(minion)
        threading.Event().wait(0.01)
        inside[0] -= 1
        return seed_pillar

    claims = fleet.CachedClaims(salt_cache, compile_pillar, known=lambda minion: True)
    with concurrent.futures.ThreadPoolExecutor(8) as threads:
        found = list(threads.map(claims, ["lb1", "lb2"] * 8))
    assert {claim.name for claim in found} == {"lb1+lb2"} and most[0] == 1 and sorted(compiled) == ["lb1", "lb2"]
