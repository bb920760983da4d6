"""Quality metrics with the official StyleGAN2-ADA definitions: FID, KID, precision/recall, IS and PPL."""

from stylefuse.metrics.callback import MetricsCallback
from stylefuse.metrics.features import Detectors, InceptionV3, VGG16Features
from stylefuse.metrics.options import MetricOptions
from stylefuse.metrics.registry import calc_metric, list_metrics, register_metric, report_metric, reported_name

__all__ = [
    "Detectors", "InceptionV3", "MetricOptions", "MetricsCallback", "VGG16Features", "calc_metric",
    "list_metrics", "register_metric", "report_metric", "reported_name",
]
