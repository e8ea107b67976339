package files

import "syscall"

// sysFstatat is fstatat's number (newfstatat on amd64).
const sysFstatat = syscall.SYS_NEWFSTATAT
