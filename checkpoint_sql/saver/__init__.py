"""The checkpoint saver: its tables, how a checkpoint becomes rows and back (codec,
statements, elements), the operations run on them, and retention."""
