"""maskfocal: Mask Focal Loss: A unifying framework for dense crowd counting with canonical object detection
networks (Zhong, Wang, Liu, Wu, Deng; arXiv 2212.11542; v1 title "Mask Focal Loss for dense crowd counting with
canonical object detection networks").

Component -> file map (spec ../shared/specs/maskfocal.md, section 2):
  gaussian_radius, draw_heatmap, masks, pseudo_boxes, targets ... heatmap.py
  binary_focal_loss, centernet_focal_loss, MaskFocalLoss ...... loss.py
  CenterNetLite, FCOSLite (native loss or MFL: loss.cls_loss) . model.py, loss.py (criteria)
  decoding, counting, MAE/RMSE, AP@0.5, point-F1, buckets ..... scoring.py (evaluate_model, finite)
  evaluate(cfg, run_dir): final checkpoint -> eval.json ....... evaluate.py
  SynthCrowd generator ....................................... synthcrowd.py
  COCO / points readers (validated; InputError) .............. data.py
  SCUT-HEAD VOC XML, CrowdHuman .odgt, ShanghaiTech / QNRF .mat  formats.py
  tenfold predict maskfocal (tiled, the run's validation tau) . predict.py
  load_data (a run's splits), input normalise ................ data.py
  torchrun / DistributedDataParallel helpers ................. tenfold/core/distributed.py
"""

from tenfold.core.registry import SystemSpec, deferred
from tenfold.systems.maskfocal.config import DEV_SEEDS, PROFILES, Config


SPEC = SystemSpec(
    key="maskfocal",
    title="Mask Focal Loss: A unifying framework for dense crowd counting with canonical object detection networks",
    arxiv="2212.11542",
    config_cls=Config,
    profiles=PROFILES,
    train=deferred("tenfold.systems.maskfocal.train", "train"),
    evaluate=deferred("tenfold.systems.maskfocal.evaluate", "evaluate"),
    reproduce=deferred("tenfold.systems.maskfocal.reproduce", "reproduce"),
    reproduce_minutes=15.0,  # issue 19: 3 claim seeds x 10 runs in 15 minutes on 2 cores
    dev_seeds=DEV_SEEDS,
    predict=deferred("tenfold.systems.maskfocal.predict", "predict"),
)
