#!/bin/bash
${directives}
${header}

# PBS starts a job in $HOME and names the submission directory in PBS_O_WORKDIR: run the block
# where the workflow submitted it (as the other providers do), if that directory exists here.
if [ -n "$PBS_O_WORKDIR" ] && [ -d "$PBS_O_WORKDIR" ]; then cd "$PBS_O_WORKDIR"; fi

${setup}

${command}
