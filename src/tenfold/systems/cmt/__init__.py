"""cmt: Cross Modal Transformer: Towards Fast and Robust 3D Object Detection (Yan, Liu, Sun, Jia, Li, Wang, Zhang;
ICCV 2023; arXiv 2301.01283), official code junjie18/CMT, in pure PyTorch on CPU.

Component -> file map (spec ../shared/specs/cmt.md, section 2):
  voxelisation + mean VFE ............................... lidar.py
  point BEV encoder, image backbone, decoder, heads ..... model.py
  coordinates encoding (image rays), BEV PE ............. position_encoding.py
  box coder (official slot quirk), post-processing ...... box_coder.py
  Hungarian matcher, focal + L1 criterion, DN losses .... loss.py, model.CmtLoss
  query denoising ....................................... denoising.py
  ModalMask3D ........................................... augment.py
  NDS (nuscenes-devkit detection eval) .................. metrics.py
  SynthDrive generator .................................. synthdrive.py
  loaders (SynthDrive, nuScenes), batches, scoring ...... data.py
  nuScenes annotations -> mmdet3d infos, splits ......... nuscenes.py
  train / evaluate / predict / reproduce ................ train.py, evaluate.py, predict.py, reproduce.py
"""

from tenfold.core.registry import SystemSpec, deferred
from tenfold.systems.cmt.config import DEV_SEEDS, PROFILES, Config

SPEC = SystemSpec(
    key="cmt",
    title="Cross Modal Transformer: Towards Fast and Robust 3D Object Detection",
    arxiv="2301.01283",
    config_cls=Config,
    profiles=PROFILES,
    train=deferred("tenfold.systems.cmt.train", "train"),
    evaluate=deferred("tenfold.systems.cmt.evaluate", "evaluate"),
    reproduce=deferred("tenfold.systems.cmt.reproduce", "reproduce"),
    reproduce_minutes=15.0,
    dev_seeds=DEV_SEEDS,
    predict=deferred("tenfold.systems.cmt.predict", "predict"),
)
