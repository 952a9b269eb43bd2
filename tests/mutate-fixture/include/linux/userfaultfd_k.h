/* SPDX-License-Identifier: GPL-2.0 */
#define VM_UFFD_WP 0x1000

static inline bool userfaultfd_wp(struct vm_area_struct *vma)
{
	return vma->vm_flags & VM_UFFD_WP;
}
