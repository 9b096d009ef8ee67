"""
The master's own Salt, as the reactions use it: jobs to the nodes, the minions it knows, the
``lbpair`` pillar it compiles for each, its event bus and the background worker's start. The
``lbpair`` runner makes one from its master options (:class:`SaltSide`); the reactions never see
Salt's objects, only these functions (:class:`saltext.lbpair.master.reactions.Reactions`).
"""

import copy
import logging
import os
import shutil
import subprocess
import sys

import salt.cache
import salt.client
import salt.key
import salt.pillar
import salt.utils.event
import salt.utils.minions

from saltext.lbpair.master import fleet, reactions, reactions_config

#: where a master of masters keeps the minions below its syndics (Salt's cache: bank, key)
BELOW_SYNDICS = ("lbpair/fleet", "below_syndics")
#: the event the background work fires after each round, with what it did (``{"done": [...]}``)
DONE_TAG = "lbpair/worker/done"

log = logging.getLogger(__name__)


class SaltSide:
    """The master's Salt for its options *opts* (the runner's)."""

    def __init__(self, opts):
        self.opts = opts

    def ask(self, targets, fun, kwarg, timeout):
        """Run ``fun`` on the minions ``targets``; ``({minion: return}, {minion: failure})``."""
        client = salt.client.get_local_client(mopts=self.opts)
        try:
            returns = client.cmd(targets, fun, kwarg=kwarg, tgt_type="list", timeout=timeout, full_return=True)
        finally:
            client.destroy()
        return reactions.split_returns(fun, returns)

    def wake(self):
        """Start ``salt-run lbpair.flush wait=True`` as a background job of its own (a new process, not a fork of the reactor's)."""
        salt_run = shutil.which("salt-run", path=os.path.dirname(sys.executable)) or shutil.which("salt-run") or "salt-run"
        command = ["setsid", "-f", salt_run, "-c", os.path.dirname(self.opts["conf_file"]), "--out=quiet", "lbpair.flush", "wait=True"]
        try:
            subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10, check=True)
        except (OSError, subprocess.SubprocessError) as exc:  # the master's schedule runs lbpair.flush all the same
            log.error("lbpair: could not start the background lbpair.flush: %s", exc)

    def report(self, done):
        """Fire what a round of the background work did on the master's event bus (:data:`DONE_TAG`)."""
        try:
            with salt.utils.event.get_master_event(self.opts, self.opts["sock_dir"], listen=False) as bus:
                bus.fire_event({"done": done}, DONE_TAG)
        except Exception as exc:  # noqa: BLE001  (telling is a courtesy: the work is done and in the history)
            log.warning("lbpair: could not fire %s: %s", DONE_TAG, exc)

    def known_minions(self):
        """The minions this master knows: accepted keys, those whose grains it keeps, and those below its syndics."""
        accepted = salt.key.get_key(self.opts).list_status("accepted").get("minions", [])
        return sorted(set(accepted) | set(salt.cache.factory(self.opts).list("grains") or ()) | set(self.below_syndics()))

    def below_syndics(self):
        """
        On a master of masters (``order_masters``), the minions below its syndics: it keeps neither
        their keys nor their grains, so a ping of every minion tells them, kept a minute.
        """
        if not self.opts.get("order_masters"):
            return []
        cache = salt.cache.factory(self.opts)
        below = cache.fetch(*BELOW_SYNDICS)
        if not below:
            client = salt.client.get_local_client(mopts=self.opts)
            try:
                timeout = reactions_config.normalise(self.opts.get(reactions_config.CONFIG_KEY) or {})["confirm"]["timeout"]
                below = sorted(client.cmd("*", "test.ping", timeout=timeout))
            finally:
                client.destroy()
            cache.store(*BELOW_SYNDICS, below, expires=fleet.CLAIM_TTL)
        return below

    def claims(self):
        """What each minion's ``lbpair`` pillar, compiled here, says of its pair (kept a minute in the master's cache)."""
        if self.opts.get("order_masters"):  # nodes below syndics are known by no key: any id a node may have is looked up
            known = lambda minion: True  # noqa: E731
        else:
            minions = fleet.kept_for(fleet.CLAIM_TTL, lambda: set(self.known_minions()))  # the resident worker learns new minions
            known = lambda minion: minion in minions() or minion in minions(fresh=True)  # noqa: E731
        return fleet.CachedClaims(salt.cache.factory(self.opts), self.lbpair_pillar, known)

    def lbpair_pillar(self, minion):
        """The ``lbpair`` pillar the master compiles for ``minion`` (as ``salt-run pillar.show_pillar`` does), or None."""
        _cached_id, grains, _cached = salt.utils.minions.get_minion_data(minion, self.opts)
        opts = copy.deepcopy(dict(self.opts))  # the reactor's threads share these options: a compile must not touch them
        # the minion's own id even when the master's cache has nothing of it (being rewritten, or a
        # minion below a syndic): Salt would compile the master's own pillar instead
        compiled = salt.pillar.Pillar(opts, grains or {"fqdn": minion}, minion, "base").compile_pillar()
        return compiled.get("lbpair")
