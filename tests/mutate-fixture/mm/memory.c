// SPDX-License-Identifier: GPL-2.0
/* A tiny fake kernel file for `ci/mutate selftest`: uffd-wp lines of every kind. */
#include <linux/userfaultfd_k.h>

static void copy_one(struct vm_area_struct *vma, pte_t *dst, pte_t pte)
{
	/* pte_uffd_wp(pte) in a comment is no site */
	if (!userfaultfd_wp(vma))
		pte = pte_clear_uffd_wp(pte);
	if (pte_present(pte) &&
	    pte_uffd_wp(pte))
		pte = pte_mkuffd_wp(pte);
	set_pte(dst, pte);
}

static int zap_one(struct vm_area_struct *vma, pte_t *ptep, unsigned long cp_flags)
{
	bool uffd_wp = cp_flags & MM_CP_UFFD_WP;

	if (uffd_wp)
		set_pte(ptep, make_pte_marker(PTE_MARKER_UFFD_WP));
	return pte_marker_uffd_wp(*ptep);
}
