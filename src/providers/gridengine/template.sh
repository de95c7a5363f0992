#!/bin/bash
${directives}
${header}
# This file is the block exactly as submitted: qsub it again to rerun the block by hand. Note
# that qsub reads every line starting with #$ in the whole file as a directive, not only these.

${setup}

${command}
