package files

import "syscall"

// sysFstatat is fstatat's number on arm64.
const sysFstatat = syscall.SYS_FSTATAT
