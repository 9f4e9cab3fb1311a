"""numba_rnn: TensorFlow 1.x ``tf.nn`` recurrent networks on Numba kernels."""
__version__ = "0.1.0"
