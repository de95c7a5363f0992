#!/bin/bash
#SBATCH --job-name=${jobName}
#SBATCH --output=${stdoutPath}
#SBATCH --error=${stderrPath}
${directives}
${header}
# Written from tsflow's src/providers/slurm/template.sh: the #SBATCH lines come from the
# provider's options, then schedulerOptions as given.

${setup}

${command}
