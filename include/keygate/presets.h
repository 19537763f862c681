/* presets.h - built-in policies (YAML texts), registered in lib/policy.c. */
#ifndef KEYGATE_PRESETS_H
#define KEYGATE_PRESETS_H

/* "bee": Swarm Bee's restricted-API roles and rules. */
extern const char kg__preset_bee_yaml[];

#endif
