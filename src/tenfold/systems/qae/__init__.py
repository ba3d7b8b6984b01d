"""qae: On compression rate of quantum autoencoders: control design, numerical and experimental
realization (Ma, Huang, Chen, Dong, Wang, Wu, Xiang; Automatica 2023; arXiv 2005.11149).

Component -> file map (spec ../shared/specs/qae.md, section 2):
  ensembles, interop, input validation ........................ data.py
  trash projector, F_enc, F_dec, Uhlmann ....................... loss.py
  eigenvalue bound, certificate ................................ bound.py
  controlled quantum system, GRAPE, Lie rank, user control files control.py
  UnitaryEncoder, CircuitEncoder ............................... model.py
  learners, budgets at simulation and hardware cost ............ learning.py
  the encoder's problem, unitary and inference report .......... encoder.py
  train / evaluate / predict / reproduce ....................... train.py, evaluate.py, predict.py, reproduce.py
"""

from tenfold.core.registry import SystemSpec, deferred
from tenfold.systems.qae.config import DEV_SEEDS, PROFILES, Config


SPEC = SystemSpec(
    key="qae",
    title="On compression rate of quantum autoencoders: control design, numerical and experimental realization",
    arxiv="2005.11149",
    config_cls=Config,
    profiles=PROFILES,
    train=deferred("tenfold.systems.qae.train", "train"),
    evaluate=deferred("tenfold.systems.qae.evaluate", "evaluate"),
    reproduce=deferred("tenfold.systems.qae.reproduce", "reproduce"),
    reproduce_minutes=5.0,
    dev_seeds=DEV_SEEDS,
    predict=deferred("tenfold.systems.qae.predict", "predict"),
)
