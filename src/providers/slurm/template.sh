#!/bin/bash
#SBATCH --job-name=${jobName}
#SBATCH --output=${stdoutPath}
#SBATCH --error=${stderrPath}
${directives}
${header}
# Written from tsflow's src/providers/slurm/template.sh: the #SBATCH lines come from the
# provider's options, then schedulerOptions as given.

${setup}

# Slurm's own end of this job for its managers (Slurm exports SLURM_JOB_END_TIME itself only
# from 23.02): exact even when a prolog delayed this script or a partition limit cut the job.
# Without a time limit squeue says NONE, which date rejects: nothing is exported.
if [ -z "$SLURM_JOB_END_TIME" ] && tsflow_end=$(SLURM_TIME_FORMAT=standard timeout 10 squeue -h -j "$SLURM_JOB_ID" -o %e 2>/dev/null) &&
  [ -n "$tsflow_end" ] && tsflow_end=$(date -d "$tsflow_end" +%s 2>/dev/null); then
  export SLURM_JOB_END_TIME=$tsflow_end
fi
unset tsflow_end

${command}
