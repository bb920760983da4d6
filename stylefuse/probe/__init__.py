"""The toy probe: reads the attributes of toy faces back from images (`stylefuse.data.toy.ATTRIBUTES`)."""

from stylefuse.probe.network import (
    PROBE_FILE,
    ProbeDetector,
    ToyProbe,
    attribute_layout,
    decode_outputs,
    load_probe,
    save_probe,
    split_predictions,
)

__all__ = ["PROBE_FILE", "ProbeDetector", "ToyProbe", "attribute_layout", "decode_outputs", "load_probe",
           "save_probe", "split_predictions"]
