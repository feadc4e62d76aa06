"""The grader: stateless validation, scoring, grading and ranking."""

import pandas as pd

# Cached answers are shared by concurrent gradings. Under copy-on-write a shallow copy per
# call isolates them at no cost, where a deep copy of a large answers file would dominate
# grading time. Specs are tested in this mode, since importing them imports this package.
pd.set_option("mode.copy_on_write", True)
