/* SPDX-License-Identifier: Apache-2.0 */
#define _GNU_SOURCE /* dladdr, RTLD_NOLOAD */
/*
 * Which TCTI module may be loaded, and from where: the one rule for the CLI, edgetrustd and its
 * TPM helper. tctildr, given a name, dlopen()s "NAME" and then "libtss2-tcti-NAME.so.0"
 * through the library search path (LD_LIBRARY_PATH included), and any path given as the name;
 * the module's constructor then runs with the caller's rights, root on a device (finding 9 of
 * issue 10). So a TCTI named by --tcti, EDGETRUST_TCTI, TPM2TOOLS_TCTI or the agent's tcti
 * is one of the system's by name, loaded by its absolute path from the directory that holds
 * libtss2-tctildr itself (/usr/lib/<multiarch> on Debian, /usr/lib on Yocto); any other module
 * only by an explicit absolute path (--tcti-module, tcti_module) to a file nobody else could
 * have written.
 */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tss2/tss2_tctildr.h>

#include "tpm.h"

/*
 * The TCTIs loaded by name. Not cmd (it runs a command line from its configuration string)
 * nor pcap (it loads a second TCTI named in its configuration string through tctildr's
 * search): both are ways to run other code, so only --tcti-module names their file.
 */
static const char *const by_name[] = {"device", "swtpm", "mssim", "tabrmd"};
#define BY_NAME_LIST "device, swtpm, mssim, tabrmd"

static bool allowed_name(const char *name)
{
	for (size_t i = 0; i < sizeof(by_name) / sizeof(by_name[0]); i++)
		if (strcmp(name, by_name[i]) == 0)
			return true;
	return false;
}

/* The directory libtss2-tctildr was loaded from, where tpm2-tss installs its TCTIs. */
static int system_dir(char dir[PATH_MAX])
{
	void *h = dlopen("libtss2-tctildr.so.0", RTLD_NOW | RTLD_NOLOAD);
	void *sym = h ? dlsym(h, "Tss2_TctiLdr_Initialize_Ex") : NULL;
	Dl_info info;
	const char *slash;
	int ok;

	/* dlsym gives the address inside the library even where this code is linked into an
	 * executable whose own PLT would otherwise be the function's address. */
	ok = sym && dladdr(sym, &info) && info.dli_fname && info.dli_fname[0] == '/';
	if (ok) {
		slash = strrchr(info.dli_fname, '/');
		ok = (size_t)(slash - info.dli_fname) < PATH_MAX;
		if (ok) {
			memcpy(dir, info.dli_fname, (size_t)(slash - info.dli_fname));
			dir[slash - info.dli_fname] = '\0';
		}
	}
	if (h)
		dlclose(h);
	if (!ok)
		return et_fail(ET_E_TPM_UNREACHABLE,
			       "cannot tell which directory the system's TCTIs are in (libtss2-tctildr "
			       "was not loaded from an absolute path); name the TCTI module's file with "
			       "--tcti-module PATH (edgetrustd: tcti_module)");
	return 0;
}

/* Owned by root or by us, and not writable by group or others. */
static const char *unsafe_owner_mode(const struct stat *st)
{
	if (st->st_uid != 0 && st->st_uid != geteuid())
		return "is owned by another user (it must belong to root or to the user running "
		       "edgetrust)";
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return "is writable by group or others (chmod go-w)";
	return NULL;
}

/* The rule for a module file: see the header comment. real: the resolved path to load. */
static int module_check(const char *path, const char *what, char real[PATH_MAX])
{
	struct stat st;
	const char *why;
	char *slash;

	if (path[0] != '/')
		return et_fail(ET_E_INVALID,
			       "TCTI module '%s' (%s) is not an absolute path; give the module's full "
			       "path, so that no search path decides which file is loaded",
			       path, what);
	if (!realpath(path, real) || stat(real, &st) < 0)
		return et_fail(ET_E_TPM_UNREACHABLE,
			       "TCTI module %s (%s) cannot be used: %s; check the path", path, what,
			       strerror(errno));
	if (!S_ISREG(st.st_mode))
		return et_fail(ET_E_PERMISSION, "TCTI module %s (%s) is not a regular file", path,
			       what);
	why = unsafe_owner_mode(&st);
	if (why)
		return et_fail(ET_E_PERMISSION,
			       "TCTI module %s (%s) %s; refusing to load it, its code would run "
			       "with our rights",
			       path, what, why);
	/* Its directory too: whoever may write there may swap the file after this check. A
	 * sticky directory (/tmp) lets nobody else rename our file. */
	slash = strrchr(real, '/');
	*slash = '\0';
	if (stat(real[0] ? real : "/", &st) < 0 ||
	    ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) ||
	    (st.st_uid != 0 && st.st_uid != geteuid())) {
		int r = et_fail(ET_E_PERMISSION,
				"TCTI module %s (%s) is in the directory %s, which another user may "
				"write to; refusing to load it (move the module, or chmod go-w the "
				"directory)",
				path, what, real[0] ? real : "/");
		*slash = '/';
		return r;
	}
	*slash = '/';
	return 0;
}

int et_tcti_resolve(const char *name, const char *module, const char *tcti,
		    const char *source, char **ret_path, void **ret_dl)
{
	char dir[PATH_MAX], path[PATH_MAX + 32], real[PATH_MAX], what[160];
	void *dl;
	int r;

	if (module) {
		snprintf(what, sizeof(what), "given for TCTI '%s'", tcti);
		r = module_check(module, what, real);
	} else {
		if (!allowed_name(name))
			return et_fail(ET_E_INVALID,
				       "TCTI '%s' (from %s): '%s' is not one of the TCTIs loaded by "
				       "name (" BY_NAME_LIST "); no other library is loaded by name "
				       "or search path. To use another TCTI module, give its absolute "
				       "path with --tcti-module PATH (edgetrustd: tcti_module)",
				       tcti, source, name);
		r = system_dir(dir);
		if (r < 0)
			return r;
		snprintf(path, sizeof(path), "%s/libtss2-tcti-%s.so.0", dir, name);
		if (access(path, F_OK) < 0)
			return et_fail(ET_E_TPM_UNREACHABLE,
				       "TPM unreachable: no TCTI named '%s' is installed (%s does not "
				       "exist; TCTI '%s' from %s). Use device:/dev/tpmrm0, "
				       "swtpm:host=H,port=P, mssim:host=H,port=P or tabrmd:",
				       name, path, tcti, source);
		snprintf(what, sizeof(what), "the system's TCTI '%s'", name);
		r = module_check(path, what, real);
	}
	if (r < 0)
		return r;
	/* Loaded here once and held for the context's life: tctildr's own dlopen() of the same
	 * path then finds it loaded, and never falls back to its search when loading fails. */
	dl = dlopen(real, RTLD_NOW | RTLD_LOCAL);
	if (!dl)
		return et_fail(ET_E_TPM_UNREACHABLE,
			       "TPM unreachable: the TCTI module %s (TCTI '%s' from %s) cannot be "
			       "loaded: %s",
			       real, tcti, source, dlerror());
	*ret_path = strdup(real);
	if (!*ret_path) {
		dlclose(dl);
		return et_fail(ET_E_NOMEM, "out of memory opening the TPM");
	}
	*ret_dl = dl;
	return 0;
}
