"""The KEMI script Kamailio's app_python3 loads (cfgengine "python").

Thin on purpose: it makes the payivr package importable, loads the payivr config
once (before Kamailio forks its workers) and hands every request to
payivr.kamailio.router.Router, which reads the message through KSR, asks the pure
core (payivr.core.admission) for a decision and acts on it.

Kamailio runs this in Debian's /usr/bin/python3, not in a virtualenv. The package is
found on its sys.path (installed where Debian's python3 imports from, as the Ansible
role does) or, for a checkout, in the directory named by the PAYIVR_PYLIB define that
`payivr kamailio run` / `payivr kamailio defines` write into payivr-local.cfg.
"""

import sys

import KSR


def _define(name):
    """A define of payivr-local.cfg, without the quotes the cfg syntax needs."""
    value = KSR.kx.get_def(name) or ""
    return value.strip().strip('"')


def mod_init():
    """Called once by Kamailio's main process; the returned object serves every worker."""
    pylib = _define("PAYIVR_PYLIB")
    if pylib and pylib not in sys.path:
        sys.path.insert(0, pylib)
    from payivr.kamailio.router import build_router

    return build_router(KSR, _define("PAYIVR_CONFIG"))
