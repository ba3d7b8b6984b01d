"""qae: On compression rate of quantum autoencoders: control design, numerical and experimental
realization (Ma, Huang, Chen, Dong, Wang, Wu, Xiang; Automatica 2023; arXiv 2005.11149).

Component -> file map (spec ../shared/specs/qae.md, section 2):
  ensembles, interop, input validation ... data.py
  trash projector, F_enc, F_dec, Uhlmann .. loss.py
  eigenvalue bound, certificate ........... bound.py
  controlled quantum system, GRAPE, Lie rank control.py
  UnitaryEncoder, CircuitEncoder .......... model.py
  learners compared at equal budgets ...... learning.py
"""

from tenfold.core.registry import SystemSpec
from tenfold.systems.qae.config import PROFILES, Config


def _train(cfg, run_dir):
    from tenfold.systems.qae.train import train

    return train(cfg, run_dir)


def _evaluate(cfg, run_dir):
    from tenfold.systems.qae.evaluate import evaluate

    return evaluate(cfg, run_dir)


def _reproduce(profile, seed, out_dir):
    from tenfold.systems.qae.reproduce import reproduce

    return reproduce(profile, seed, out_dir)


SPEC = SystemSpec(
    key="qae",
    title="On compression rate of quantum autoencoders: control design, numerical and experimental realization",
    arxiv="2005.11149",
    config_cls=Config,
    profiles=PROFILES,
    train=_train,
    evaluate=_evaluate,
    reproduce=_reproduce,
    reproduce_minutes=3.0,
)
