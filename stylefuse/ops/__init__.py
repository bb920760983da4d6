"""Plain-PyTorch versions of StyleGAN2's resampling and activation kernels (CPU and GPU, any-order gradients)."""

from stylefuse.ops.bias_act import bias_act
from stylefuse.ops.conv2d_resample import conv2d_resample
from stylefuse.ops.upfirdn2d import downsample2d, setup_filter, upfirdn2d, upsample2d

__all__ = ["bias_act", "conv2d_resample", "downsample2d", "setup_filter", "upfirdn2d", "upsample2d"]
