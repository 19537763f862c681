/* cmds.h - subcommands besides serve. argv[0] is the subcommand's name;
 * each returns the process exit status. */
#ifndef KG_CMDS_H
#define KG_CMDS_H

int kg_cmd_bcrypt(int argc, char **argv);
int kg_cmd_token(int argc, char **argv);

#endif
