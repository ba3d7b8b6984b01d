"""drumlm: Language Models are Drummers: Drum Composition with Natural Language Pre-Training (Zhang,
Callison-Burch; 1st Workshop on Creative AI across Modalities @ AAAI 2023; arXiv 2301.01162).

Component -> file map (spec ../shared/specs/drumlm.md, section 2):
  drumroll encoding both ways, prompt / completion split, lenient parser ........ drumroll.py
  procedural groove generator, GMD reader, windows ................................ data.py
  stability, 2-means, references, repetition, novelty, density, validity ......... structure.py
  CharTokenizer ................................................................... tokenizer.py
  completion loss ................................................................. loss.py
  from-scratch Transformer C ...................................................... model.py
  SmolLM2-135M (A) / random twin (B) / LoRA / KV sampling ......................... lm.py
  the three arms shared by train / evaluate / predict ............................. arms.py
  train / evaluate / predict / reproduce .......................................... train.py, evaluate.py,
                                                                                    predict.py, reproduce.py
"""

from tenfold.core.registry import SystemSpec, deferred
from tenfold.systems.drumlm.config import DEV_SEEDS, PROFILES, Config

SPEC = SystemSpec(
    key="drumlm",
    title="Language Models are Drummers: Drum Composition with Natural Language Pre-Training",
    arxiv="2301.01162",
    config_cls=Config,
    profiles=PROFILES,
    train=deferred("tenfold.systems.drumlm.train", "train"),
    evaluate=deferred("tenfold.systems.drumlm.evaluate", "evaluate"),
    reproduce=deferred("tenfold.systems.drumlm.reproduce", "reproduce"),
    reproduce_minutes=20.0,
    dev_seeds=DEV_SEEDS,
    predict=deferred("tenfold.systems.drumlm.predict", "predict"),
    predict_options=("bars",),
)
