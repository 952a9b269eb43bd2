#!/bin/bash
# The order the committed campaign ran in (core uffd-wp files first, then every other mutant
# of the big files, then the rest, headers last): each `run` resumes, so rerunning this
# continues where the results file stops. Usage: ci/mutate.d/campaign.sh [ci/mutate options];
# options of `run` itself (e.g. --selftests never) in MUTATE_RUN_OPTS.
cd "$(dirname "$0")/../.."
M="ci/mutate $*"
run() { $M run $MUTATE_RUN_OPTS "$@"; }
for f in mm/page_table_check.c mm/migrate_device.c mm/mprotect.c mm/userfaultfd.c fs/userfaultfd.c; do
  run --file $f
done
for f in mm/memory.c fs/proc/task_mmu.c mm/huge_memory.c mm/hugetlb.c mm/rmap.c; do
  run --file $f --shard 1/2
done
for f in mm/mremap.c mm/migrate.c mm/swapfile.c mm/khugepaged.c mm/vma.c; do
  run --file $f
done
for f in mm/memory.c fs/proc/task_mmu.c mm/huge_memory.c mm/hugetlb.c mm/rmap.c; do
  run --file $f --shard 2/2
done
run --file include/linux/userfaultfd_k.h
run
