"""doorping: Backdoor Attacks Against Dataset Distillation (Liu, Li, Backes, Shen, Zhang; NDSS 2023;
arXiv 2301.01197).

Component -> file map (spec ../shared/specs/doorping.md, section 2):
  poison_subset, trigger_mask, stamp, data sets ..... data.py
  NaiveAttack, DoorpingTrigger, InvisibleTrigger .... attack.py
  ConvNet, ConvNetMini, AlexNet ..................... model.py
  gradient_match_distance, DM distance .............. loss.py
  DatasetCondensation (DC, DSA), DM ................. distill_dc.py
  DatasetDistillation (DD) .......................... distill_dd.py
  evaluate_synset (victims, CTA, ASR) ............... victims.py
  load_for_config, streams, victim_factory .......... victims.py (shared by train.py and evaluate.py)
  evaluate (from artefacts), defense_metrics ........ evaluate.py
  defenses (Neural Cleanse, STRIP, fine-pruning,
            activation clustering, spectral signatures) defense.py
  reproduce (4 arms, defenses, claim rows) .......... reproduce.py
  predict (scan a data set with the defenses) ....... predict.py
"""

from tenfold.core.registry import SystemSpec, deferred
from tenfold.systems.doorping.config import DEV_SEEDS, PROFILES, Config


SPEC = SystemSpec(
    key="doorping",
    title="Backdoor Attacks Against Dataset Distillation",
    arxiv="2301.01197",
    config_cls=Config,
    profiles=PROFILES,
    train=deferred("tenfold.systems.doorping.train", "train"),
    evaluate=deferred("tenfold.systems.doorping.evaluate", "evaluate"),
    predict=deferred("tenfold.systems.doorping.predict", "predict"),
    reproduce=deferred("tenfold.systems.doorping.reproduce", "reproduce"),
    reproduce_minutes=15.0,  # issue 21: 3 claim seeds, 4 arms, every defense on every victim
    dev_seeds=DEV_SEEDS,
)
