"""Readers and writers of the raw file formats the datasets come in, independent of any one dataset.

- :mod:`~bidl.data.formats.aedat`: AEDAT 3.1 (IBM's DVS128 Gesture release) and tonic's pre-cut ``.npy``
  event files; :data:`~bidl.data.formats.aedat.EVENT_DTYPE`, the event array every reader returns.
- :mod:`~bidl.data.formats.aedat2`: jAER AEDAT 2.0 (CIFAR10-DVS).
- :mod:`~bidl.data.formats.events`: event arrays to frames, and to / from tonic's event dtype.
- :mod:`~bidl.data.formats.jpeg`: checks of JPEG frame files (signature, header, end of image) that name the
  file and what is wrong.
- :mod:`~bidl.data.formats.metaimage`: MetaImage ``.mhd`` + ``.raw`` / ``.zraw`` volumes (LUNA16).
"""
