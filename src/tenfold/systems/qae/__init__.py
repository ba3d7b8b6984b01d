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

from tenfold.core.registry import SystemSpec, deferred
from tenfold.systems.qae.config import PROFILES, Config


SPEC = SystemSpec(
    key="qae",
    title="On compression rate of quantum autoencoders: control design, numerical and experimental realization",
    arxiv="2005.11149",
    config_cls=Config,
    profiles=PROFILES,
    train=deferred("tenfold.systems.qae.train", "train"),
    evaluate=deferred("tenfold.systems.qae.evaluate", "evaluate"),
    reproduce=deferred("tenfold.systems.qae.reproduce", "reproduce"),
    reproduce_minutes=3.0,
)
