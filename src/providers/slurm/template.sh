#!/bin/bash
#SBATCH --job-name=${jobName}
#SBATCH --output=${stdoutPath}
#SBATCH --error=${stderrPath}
${directives}
${header}
# Placeholders are filled in by tsflow's Slurm provider (src/providers/slurm/template.sh); the
# #SBATCH lines above are its options (nodesPerBlock, coresPerNode, memPerNode, walltime,
# exclusive, partition, account, qos, constraint, clusters), then schedulerOptions verbatim.

${setup}

${command}
