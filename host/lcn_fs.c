/* lcn_fs.c: Lua binding of file I/O (cn_fs.c). Placeholder until the
** Reader/Writer issue lands: an empty module. */
#include <lua.h>

#include "lcn.h"


int luaopen_coronet_fs(lua_State *L) {
  lua_newtable(L);
  return 1;
}
